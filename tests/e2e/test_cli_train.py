"""`snn-study train` as a user runs it: a real subprocess, its exit code, its stdout and stderr."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from support import REPO, SNN_STUDY

from objectives import BACKPROPS, NEURONS, SURROGATES


def run(*args, cwd=REPO, env=None):
    return subprocess.run([*SNN_STUDY, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def test_train_prints_a_line_per_epoch_and_a_json_summary_last(tmp_path, tiny):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(tiny))
    proc = run("train", "--config", str(config), "--set", "model.surrogate=atan", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("val_acc", "test_acc", "epochs", "seconds", "train_samples_per_s", "spike_rates", "config"):
        assert key in summary
    assert summary["epochs"] == 2 and set(summary["spike_rates"]) == {"conv1", "conv2", "output"}
    assert summary["config"]["model"]["surrogate"] == "atan"
    # the normalized scale (the default): the width sets atan's shape, and the config records the width
    model = summary["config"]["model"]
    assert model["surrogate_args"] == {} and model["surrogate_scale"] == "normalized" and model["surrogate_width"] > 0
    assert model["gain"] == "matched" and summary["config"]["dataset"]["normalize"] is True
    assert [line.split()[1] for line in proc.stderr.splitlines() if line.startswith("epoch")] == ["1/2", "2/2"]


def test_help_lists_every_registry_key():
    proc = run("train", "--help")
    assert proc.returncode == 0
    for key in [*NEURONS, *SURROGATES, *BACKPROPS]:
        assert key in proc.stdout
    # what rtrl is: snntorch's name for truncated BPTT with a one-step window
    assert "rtrl   truncated BPTT with a one-step window (snntorch's RTRL), not forward-mode real-time recurrent" \
        in proc.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "model.neuron=hodgkin"], "model.neuron: got 'hodgkin'; allowed: alpha, leaky, synaptic, lapicque"),
        (["--set", "training.epochs=0"], "training.epochs: got 0; must be >= 1"),
        (["--set", "model.neuron"], "expected section.field=value"),
        (["--config", "/nonexistent/run.yaml"], "--config /nonexistent/run.yaml: cannot read it"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_traceback(args, message):
    proc = run("train", *args)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_malformed_yaml_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  neuron: [leaky\n")
    proc = run("train", "--config", str(bad))
    assert proc.returncode == 2 and "not valid YAML at line" in proc.stderr


def test_a_missing_dataset_offline_says_which_folder_and_files(tmp_path):
    proc = run("train", "--set", f"dataset.root={tmp_path}", "--set", "dataset.download=false")
    assert proc.returncode == 2
    assert f"{tmp_path}/MNIST/raw" in proc.stderr and "train-images-idx3-ubyte" in proc.stderr
    assert proc.stderr.strip().count("\n") == 0


def test_debug_shows_the_traceback():
    proc = run("--debug", "train", "--set", "model.neuron=hodgkin")
    assert proc.returncode == 2 and "Traceback" in proc.stderr
