"""Helpers the tests share: the repository, the CLI as a subprocess, tiny study configs, the reports' test study.

Fixtures live in ``conftest.py``; plain functions and constants here (``from support import ...``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

REPO = Path(__file__).resolve().parents[1]
SNN_STUDY = [sys.executable, "-m", "study"]
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)

TINY = {
    "dataset": {"name": "synthetic", "val_size": 200},
    "model": {"channels": [4, 8], "num_steps": 5},
    "training": {"epochs": 2, "batch_size": 64, "device": "cpu"},
}

#: the seed's exact set-up (study/presets/seed.yaml), a run config
SEED = yaml.safe_load((REPO / "study" / "presets" / "seed.yaml").read_text())
#: the seed preset's fields that make this project compute snntorch's arithmetic (the input current as it comes,
#: snntorch's surrogate scales, a step per window): what the snntorch-equality tests run under
SNNTORCH = {
    "model": {k: SEED["model"][k] for k in ("gain", "surrogate_scale")},
    "training": {"step_every": SEED["training"]["step_every"]},
}


def with_snntorch_arithmetic(config: dict) -> dict:
    """A copy of run config ``config`` (dict form) with the seed preset's :data:`SNNTORCH` fields set."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    for section, values in SNNTORCH.items():
        out[section] = {**out.get(section, {}), **values}
    return out


def env() -> dict[str, str]:
    """The environment for a CLI subprocess: one thread per process on a shared 2-core machine."""
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def dashboard_server(url: str, log: Path, *args: str):
    """``snn-study dashboard --storage url`` (stdout and stderr into ``log``) once it answers: its base URL.
    Stopped on leaving."""
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen([*SNN_STUDY, "dashboard", "--storage", url, "--port", str(port), *args], cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 90
            while True:
                try:
                    urllib.request.urlopen(f"{base}/api/studies", timeout=10).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.time() > deadline:
                        raise AssertionError(f"the dashboard did not start: {log.read_text()}") from None
                    time.sleep(0.5)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)


def mnist_root() -> Path | None:
    """The folder holding MNIST/raw with all four files, if this machine has it."""
    for candidate in (os.environ.get("SNN_STUDY_DATA"), REPO.parent / "shared" / "data"):
        if candidate and all(
            (Path(candidate) / "MNIST" / "raw" / f).exists()
            for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                      "t10k-labels-idx1-ubyte")
        ):
            return Path(candidate)
    return None


def study_yaml(tmp_path: Path, **study) -> Path:
    """A grid over 2 neurons x 2 surrogates x 2 backprop methods on tiny synthetic data."""
    db = tmp_path / "study.db"
    config = {
        "study": {"name": "grid8", "sampler": "grid", "storage": f"sqlite:///{db}",
                  "pruner": {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 0}, **study},
        "dataset": {"name": "synthetic", "val_size": 200, "train_subset": 400},
        "model": {"channels": [4, 8], "num_steps": 5},
        "training": {"epochs": 2, "batch_size": 64, "device": "cpu"},
        "search": {"neuron": ["leaky", "synaptic"], "surrogate": ["fast_sigmoid", "atan"],
                   "backprop": ["bptt", "tbptt"], "tbptt_window": 2},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def combos(trials) -> Counter:
    """How often each neuron/surrogate/backprop combination finished among ``trials``."""
    return Counter(
        (t.params["neuron"], t.params["surrogate"], t.params["backprop"]) for t in trials if t.state in FINISHED
    )


def load(path: Path, name="grid8") -> optuna.Study:
    """Study ``name`` of the SQLite file at ``path``."""
    return optuna.load_study(study_name=name, storage=f"sqlite:///{path}")


GRID, PER_COMBO = "grid8", "pc"
FIGURES = ("val_curves", "heatmap", "distributions", "spike_rates", "membrane", "raster", "optuna_history",
           "optuna_importance", "optuna_parallel")
FIGURE_COLUMNS = {"study", "number", "state", "neuron", "surrogate", "backprop", "value", "duration_s", "epochs",
                  "test_acc", "spike_rate_conv1", "spike_rate_conv2", "spike_rate_output", "pruned_at", "failure"}


def cli(*args, timeout=300, **kwargs) -> subprocess.CompletedProcess:
    """``snn-study ARGS`` in the repository, output captured as text."""
    return subprocess.run([*SNN_STUDY, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, **kwargs)


def run_study(tmp: Path, name: str, **overrides) -> None:
    """Run a tiny grid study ``name`` (with ``section.field`` overrides) into ``tmp/study.db``."""
    config = {
        "study": {"name": name, "sampler": "grid", "storage": f"sqlite:///{tmp / 'study.db'}",
                  "pruner": {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 0}},
        "dataset": {"name": "synthetic", "val_size": 200, "train_subset": 400},
        "model": {"channels": [4, 8], "num_steps": 5},
        "training": {"epochs": 2, "batch_size": 64, "device": "cpu"},
        "search": {"neuron": ["leaky", "synaptic"], "surrogate": ["fast_sigmoid", "atan"],
                   "backprop": ["bptt", "tbptt"], "tbptt_window": 2},
    }
    for key, value in overrides.items():
        section, field = key.split(".", 1)
        config[section][field] = value
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = cli("run", "--config", str(path), "--quiet")
    assert proc.returncode == 0, proc.stderr


def built_study(tmp_path_factory) -> Path:
    """The folder of the shared test database (``study.db`` and ``artifacts/``), built on first use in this session."""
    root = tmp_path_factory.getbasetemp() / "report-study"
    if not (root / "done").exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()
        run_study(root, GRID)
        run_study(root, PER_COMBO, **{
            "study.sampler": "random", "study.n_trials": 2, "study.per_combination": True,
            "search.neuron": ["leaky", "synaptic"], "search.surrogate": ["atan"], "search.backprop": ["bptt"],
            "search.lr": {"low": 0.002, "high": 0.05, "log": True},
        })
        (root / "done").write_text("")
    return root


def copy_study(src: Path, dst: Path, artifacts: bool = True) -> str:
    """A consistent copy of the test database (SQLite's backup, so nothing sits in a WAL file), and its URL."""
    dst.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(src / "study.db") as a, sqlite3.connect(dst / "study.db") as b:
        a.backup(b)
    if artifacts:
        shutil.copytree(src / "artifacts", dst / "artifacts")
    return f"sqlite:///{dst / 'study.db'}"
