"""`snn-study train` as a user runs it: a real subprocess, its exit code, its stdout and stderr."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch
import yaml
from support import REPO, SNN_STUDY, env

from objectives import BACKPROPS, NEURONS, SURROGATES, TrialConfig, build_model, cost_metrics, load


def run(*args, cwd=REPO, env=None):
    return subprocess.run([*SNN_STUDY, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def strict_json(text: str):
    """``text`` parsed as JSON, which has no NaN or Infinity (Python's json module would take them)."""
    return json.loads(text, parse_constant=lambda constant: pytest.fail(f"{constant} is not JSON: {text}"))


def test_train_prints_a_line_per_epoch_and_a_json_summary_last(tmp_path, tiny):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(tiny))
    proc = run("train", "--config", str(config), "--set", "model.surrogate=atan", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = strict_json(proc.stdout.strip().splitlines()[-1])
    for key in ("val_acc", "test_acc", "epochs", "seconds", "train_samples_per_s", "spike_rates", "config"):
        assert key in summary
    assert summary["epochs"] == 2 and set(summary["spike_rates"]) == {"conv1", "conv2", "output"}
    assert summary["config"]["model"]["surrogate"] == "atan"
    # the normalized scale (the default): the width sets atan's shape, and the config records the width
    model = summary["config"]["model"]
    assert model["surrogate_args"] == {} and model["surrogate_scale"] == "normalized" and model["surrogate_width"] > 0
    assert model["gain"] == "matched" and summary["config"]["dataset"]["normalize"] is True
    assert [line.split()[1] for line in proc.stderr.splitlines() if line.startswith("epoch")] == ["1/2", "2/2"]


def test_train_prints_what_the_network_costs_and_the_json_holds_it(tmp_path, tiny):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(tiny))
    proc = run("train", "--config", str(config), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    costs, val_costs = summary["costs"], summary["val_costs"]
    assert costs["accuracy"] == summary["test_acc"] and val_costs["accuracy"] == summary["val_acc"]
    assert costs["layers"] == ["conv1", "conv2", "output"] and costs["synops"] > 0
    line = next(li for li in proc.stdout.splitlines() if li.startswith("test costs per inference:"))
    assert f"decision at step {costs['decision_step']} of 5" in line and "synaptic operations" in line


def test_the_result_goes_to_stdout_so_a_redirect_keeps_it_and_the_progress_to_stderr(tmp_path, tiny):
    """`snn-study train ... > result.txt` captures the accuracies; the device and epoch lines stay on the terminal
    (issue 15)."""
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(tiny))
    result = tmp_path / "result.txt"
    with result.open("w") as out:
        proc = subprocess.run([*SNN_STUDY, "train", "--config", str(config), "--json"], cwd=REPO, stdout=out,
                              stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = result.read_text().splitlines()
    summary = strict_json(lines[-1])
    assert lines[0] == (f"best val {summary['val_acc']:.2%} (epoch {summary['best_epoch']})  "
                        f"test {summary['test_acc']:.2%}  2 epochs in {summary['seconds']:.0f}s")
    assert lines[1].startswith("test costs per inference:") and len(lines) == 3
    assert [line.split()[0] for line in proc.stderr.splitlines()] == ["training", "epoch", "epoch"]
    quiet = run("train", "--config", str(config), "--quiet")  # --quiet drops the progress, not the result
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout.startswith("best val "), quiet.stderr


def test_save_writes_the_best_weights_and_the_config_and_they_give_the_test_accuracy_train_printed(tmp_path, tiny):
    """`train --save PATH`: the best-validation weights as best --weights writes them, the resolved config beside
    them without this machine's data folder; the two give back exactly the test accuracy the run printed
    (issue 15)."""
    tiny["training"]["seed"] = 3
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(tiny))
    weights = tmp_path / "out" / "model.pt"
    weights.parent.mkdir()
    proc = run("train", "--config", str(config), "--set", "model.neuron=synaptic", "--save", str(weights), "--json",
               "--quiet", env={**env(), "SNN_STUDY_DATA": str(tmp_path / "this-machines-data")})
    assert proc.returncode == 0, proc.stderr
    summary = strict_json(proc.stdout.strip().splitlines()[-1])
    assert f"saved {weights} and its config {weights.with_suffix('.yaml')}" in proc.stdout
    assert sorted(p.name for p in weights.parent.iterdir()) == ["model.pt", "model.yaml"]
    text = weights.with_suffix(".yaml").read_text()
    assert "# weights: model.pt beside this file" in text and "# re-run: snn-study train --config model.yaml" in text
    assert f"test accuracy {summary['test_acc']:.4f}" in text and "this-machines-data" not in text
    cfg = TrialConfig.from_dict(yaml.safe_load(text))
    assert cfg.dataset.root is None and cfg.model.neuron == "synaptic" and cfg.training.seed == 3
    assert cfg.to_dict() == TrialConfig.from_dict(summary["config"]).replace(**{"dataset.root": None}).to_dict()
    model = build_model(cfg)
    model.load_state_dict(torch.load(weights, weights_only=True))
    model.eval()
    assert cost_metrics(model, cfg, load(cfg.dataset, "cpu").test).accuracy == summary["test_acc"]


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


def test_the_json_line_has_no_nan_or_infinity():
    """What --json prints is JSON: a result that is not a number is null (issue 11, 14)."""
    from study._limits import json_line

    line = json_line({"val_acc": float("nan"), "spike_rates": {"conv1": float("inf"), "output": 0.5}, "epochs": 3})
    assert "\n" not in line
    assert strict_json(line) == {"val_acc": None, "spike_rates": {"conv1": None, "output": 0.5}, "epochs": 3}


def test_an_empty_config_is_refused_and_braces_take_the_defaults(tmp_path):
    """An empty file is a mistake (a file not yet written, an editor that saved nothing), not the 30-epoch
    default run: exit 2. ``{}`` (or no --config) asks for the defaults (issue 11, 11)."""
    empty, braces = tmp_path / "empty.yaml", tmp_path / "defaults.yaml"
    empty.write_text("")
    braces.write_text("{}\n")
    offline = ["--set", f"dataset.root={tmp_path}", "--set", "dataset.download=false"]
    refused = run("train", "--config", str(empty), *offline)
    assert refused.returncode == 2 and "the file is empty; write {} in it to take every default" in refused.stderr
    taken = run("train", "--config", str(braces), *offline)  # the defaults read MNIST: here, the folder lacks it
    assert taken.returncode == 2 and f"{tmp_path}/MNIST/raw" in taken.stderr, taken.stderr


def test_the_usage_error_offers_the_commands_a_user_can_run():
    proc = run("frobnicate")
    assert proc.returncode == 2
    offered = proc.stderr.split("choose from", 1)[1]
    for command in ("run", "train", "best", "list", "dashboard", "report"):
        assert f"'{command}'" in offered
    assert "_worker" not in proc.stderr


def test_a_learning_rate_written_with_an_exponent_is_a_number(tmp_path, tiny):
    """YAML 1.2 reads 1e-3 as a number (PyYAML's YAML 1.1 as the text '1e-3'), in a file and in --set
    (issue 11, 15)."""
    tiny["training"].update(epochs=1, lr="LR")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(tiny).replace("LR", "3e-3"))
    proc = run("train", "--config", str(config), "--set", "model.beta=5e-1", "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    summary = strict_json(proc.stdout.strip().splitlines()[-1])
    assert summary["config"]["training"]["lr"] == 0.003 and summary["config"]["model"]["beta"] == 0.5
