"""The command line's conventions a researcher expects: --version, the device on the first line, JSON from
list, a hint for Hydra-style overrides, shell completion."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from support import cli, env, study_yaml


def test_version_is_the_package_metadatas():
    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout == f"snn-study {metadata.version('snn-study')}\n"


def _small(tmp_path):
    path = study_yaml(tmp_path, pruner={"name": "none"})
    data = yaml.safe_load(path.read_text())
    data["search"].update(neuron=["leaky"], backprop=["bptt"])
    path.write_text(yaml.safe_dump(data))
    return path


def test_run_says_the_device_first_and_list_json_parses(tmp_path):
    run = cli("run", "--config", str(_small(tmp_path)), "--quiet")
    assert run.returncode == 0, run.stderr
    assert "1 worker(s) on cpu, storage" in run.stderr.splitlines()[0]
    # then the answer: each combination's trials and best accuracies, best first, before the hints
    table = run.stdout.splitlines()[:3]
    assert table[0].split() == ["combination", "complete", "pruned", "failed", "best", "val", "its", "test"]
    assert sorted(line.split(" / ")[0] for line in table[1:]) == ["leaky", "leaky"]
    best = [float(line.split()[-2].rstrip("%")) for line in table[1:]]
    assert best == sorted(best, reverse=True) and all(line.split()[5:8] == ["1", "0", "0"] for line in table[1:])
    listed = cli("list", "--storage", f"sqlite:///{tmp_path / 'study.db'}", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert row["name"] == "grid8" and row["complete"] == 2 and row["fail"] == row["interrupted"] == 0
    assert row["directions"] == ["MAXIMIZE"] and 0 <= row["best_value"] <= 1 and row["pareto_size"] is None


def test_train_says_the_device_on_its_first_line(tmp_path, tiny):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny))
    proc = cli("train", "--config", str(path), "--set", "training.epochs=1")
    assert proc.returncode == 0, proc.stderr
    assert ", device cpu (1 epochs max" in proc.stderr.splitlines()[0]


def test_a_hydra_style_override_without_set_is_one_line_naming_set_and_writes_nothing(tmp_path):
    config = _small(tmp_path)
    for command, args in (("run", ["--config", str(config)]), ("train", []), ("compare", ["--config", str(config)])):
        proc = cli(command, *args, "training.epochs=3", "--quiet")
        assert proc.returncode == 2
        assert proc.stderr == (f"snn-study {command}: error: training.epochs=3: overrides are given with --set, "
                               "as in --set training.epochs=3\n")
    assert not (tmp_path / "study.db").exists()
    # after --set the same text is an override; elsewhere argparse says what it does not know
    listed = cli("list", "model.neuron=alpha")
    assert listed.returncode == 2 and "unrecognized arguments: model.neuron=alpha" in listed.stderr


def test_report_open_hands_index_html_to_the_browser_or_says_where_it_is(tmp_path):
    """`report --open` opens the report as a file URL in $BROWSER (Python's webbrowser rules); with no browser that
    works, one line says where the report is, and the report is still written (exit 0)."""
    assert cli("run", "--config", str(_small(tmp_path)), "--quiet").returncode == 0
    seen = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > "{seen}"\n')
    browser.chmod(0o755)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    args = ["report", "--study", "grid8", "--storage", url, "--no-dashboard", "--open"]
    opened = cli(*args, "--out", str(tmp_path / "r1"), env={**env(), "BROWSER": str(browser)})
    assert opened.returncode == 0, opened.stderr
    assert seen.read_text().strip() == (tmp_path / "r1" / "index.html").resolve().as_uri()
    none = cli(*args, "--out", str(tmp_path / "r2"), env={**env(), "BROWSER": str(tmp_path / "no-such")})
    assert none.returncode == 0 and (tmp_path / "r2" / "index.html").exists(), none.stderr
    assert f"no web browser here to open it; open {tmp_path / 'r2' / 'index.html'}" in none.stderr


# ---- shell completion (argcomplete, optional) ---------------------------------------------------


def _complete(tmp_path: Path, line: str, **extra: str) -> subprocess.CompletedProcess:
    """What the shell hook ``register-python-argcomplete snn-study`` asks the program for ``line`` <TAB>: the
    completions go to the file named by ``_ARGCOMPLETE_STDOUT_FILENAME``, one a line."""
    out = tmp_path / "completions.txt"
    out.unlink(missing_ok=True)
    asked = {"_ARGCOMPLETE": "1", "_ARGCOMPLETE_IFS": "\n", "COMP_LINE": line, "COMP_POINT": str(len(line)),
             "_ARGCOMPLETE_STDOUT_FILENAME": str(out)}
    return cli(timeout=60, env={**env(), **asked, **extra})


@pytest.mark.parametrize(("line", "offered"), [
    ("snn-study r", {"run", "report"}),
    ("snn-study ", {"run", "compare", "train", "best", "list", "dashboard", "report", "-h", "--help", "--debug",
                    "--version"}),  # never the internal _worker
    ("snn-study report --s", {"--study", "--storage"}),
    ("snn-study compare --preset mnist-", {"mnist-grid", "mnist-tpe", "mnist-compare"}),
])
def test_tab_completes_subcommands_options_and_presets(tmp_path, line, offered):
    pytest.importorskip("argcomplete")  # the dev extra has it; the command line itself does not need it
    proc = _complete(tmp_path, line)
    assert proc.returncode == 0, proc.stderr
    assert set((tmp_path / "completions.txt").read_text().split("\n")) == offered


@pytest.mark.parametrize("module", ["argcomplete._check_module study",
                                    "argcomplete._check_console_script {script}"])
def test_global_completion_finds_the_marker_for_the_console_script_and_python_m_study(module):
    """``activate-global-python-argcomplete`` completes only programs whose module says PYTHON_ARGCOMPLETE_OK; these
    are the checks its shell hook runs (``snn-study``: the console script's module, ``python -m study``)."""
    pytest.importorskip("argcomplete")
    script = Path(sys.executable).parent / "snn-study"
    proc = subprocess.run([sys.executable, "-m", *module.format(script=script).split()], capture_output=True,
                          text=True, env=env(), timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_without_argcomplete_the_command_line_works_and_start_up_never_imports_it(tmp_path):
    """argcomplete is optional: where it is missing (here an ``argcomplete`` that fails to import, leaving a trace)
    a completion request is an ordinary run; without one, argcomplete is not even imported (start-up time)."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    trace = tmp_path / "imported"
    (blocker / "argcomplete.py").write_text(f"open({str(trace)!r}, 'w').close()\nraise ImportError('not here')\n")
    path = {"PYTHONPATH": f"{blocker}:{env().get('PYTHONPATH', '')}"}
    plain = cli("--help", env={**env(), **path})
    assert plain.returncode == 0 and "usage: snn-study" in plain.stdout and not trace.exists()
    asked = _complete(tmp_path, "snn-study r", **path)  # no completion: the bare command's usage error, exit 2
    assert trace.exists() and asked.returncode == 2 and "usage: snn-study" in asked.stderr
    assert not (tmp_path / "completions.txt").exists()
