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

#: the original research code's exact set-up (study/presets/original.yaml), a run config
ORIGINAL = yaml.safe_load((REPO / "study" / "presets" / "original.yaml").read_text())
#: original.yaml's fields that make this project compute snntorch's arithmetic (the input current as it comes,
#: snntorch's surrogate scales, each neuron's snntorch reset, a step per window): what the snntorch-equality tests
#: run under
SNNTORCH = {
    "model": {k: ORIGINAL["model"][k] for k in ("gain", "surrogate_scale", "reset_mechanism")},
    "training": {"step_every": ORIGINAL["training"]["step_every"]},
}


def with_snntorch_arithmetic(config: dict) -> dict:
    """A copy of run config ``config`` (dict form) with original.yaml's :data:`SNNTORCH` fields set."""
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


#: a grid whose cells form fused arrays (study.array_size): the 4 seeds of one neuron share an architecture
ARRAY_GRID = {"training.seed": [1, 2, 3, 4], "neuron": ["leaky", "synaptic"]}


def array_yaml(tmp_path: Path, epochs: int = 2, **study) -> Path:
    """:func:`study_yaml` over :data:`ARRAY_GRID`, unpruned (pruning follows the order in which trials finish)."""
    path = study_yaml(tmp_path, **study)
    config = yaml.safe_load(path.read_text())
    config["search"] = ARRAY_GRID
    config["study"]["pruner"] = {"name": "none"}
    config["training"]["epochs"] = epochs
    path.write_text(yaml.safe_dump(config))
    return path


def assert_each_array_cell_exactly_once(trials) -> None:
    """The grid of :func:`array_yaml`: each of its 8 cells finished once, and nothing left running or waiting."""
    counted = Counter((t.params["neuron"], t.params["training.seed"]) for t in trials if t.state in FINISHED)
    assert len(counted) == 8 and set(counted.values()) == {1}, counted
    assert not [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def combos(trials) -> Counter:
    """How often each neuron/surrogate/backprop combination finished among ``trials``."""
    return Counter(
        (t.params["neuron"], t.params["surrogate"], t.params["backprop"]) for t in trials if t.state in FINISHED
    )


def trials_of(url: str, name: str = "grid8") -> list[optuna.trial.FrozenTrial]:
    """The trials of study ``name`` in the storage at ``url`` (any server), the connection closed after."""
    from storage import open_storage

    storage = open_storage(url, heartbeat_interval=None, create=False)
    try:
        return optuna.load_study(study_name=name, storage=storage).trials
    finally:
        storage.engine.dispose()


def assert_each_combination_exactly_once(trials) -> None:
    """The grid of :func:`study_yaml`: each of its 8 combinations finished once, and nothing left running or
    waiting."""
    counted = combos(trials)
    assert len(counted) == 8 and set(counted.values()) == {1}, counted
    assert not [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def load(path: Path, name="grid8") -> optuna.Study:
    """Study ``name`` of the SQLite file at ``path``."""
    return optuna.load_study(study_name=name, storage=f"sqlite:///{path}")


GRID, PER_COMBO = "grid8", "pc"
#: the figures of the test studies' reports; Optuna's parameter importance is skipped with a note on studies of
#: fewer than reports.MIN_IMPORTANCE_TRIALS complete trials, as these are
FIGURES = ("val_curves", "heatmap", "distributions", "spike_rates", "membrane", "raster", "cost_accuracy",
           "layer_spikes", "latency", "optuna_history", "optuna_parallel")
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


PARETO = "front"


def built_pareto_study(tmp_path_factory) -> Path:
    """The folder of a study of two objectives, validation accuracy and synaptic operations (``study.db``, and
    ``run.stderr``: what ``run`` printed), run by 2 workers with the NSGA-II sampler on tiny synthetic data once
    per test session."""
    root = tmp_path_factory.getbasetemp() / "pareto-study"
    if not (root / "done").exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()
        config = {
            "study": {"name": PARETO, "sampler": "nsga2", "n_trials": 8, "workers": 2,
                      "objectives": ["val_acc", "synops"], "storage": f"sqlite:///{root / 'study.db'}"},
            "dataset": {"name": "synthetic", "val_size": 200, "train_subset": 400},
            "model": {"channels": [4, 8], "num_steps": 5},
            "training": {"epochs": 2, "batch_size": 64, "device": "cpu"},
            "search": {"neuron": ["leaky", "synaptic"], "surrogate": ["fast_sigmoid", "atan"],
                       "lr": {"low": 0.001, "high": 0.05, "log": True}, "beta": {"low": 0.3, "high": 0.95}},
        }
        (root / "study.yaml").write_text(yaml.safe_dump(config))
        proc = cli("run", "--config", str(root / "study.yaml"), "--quiet", env=env())
        assert proc.returncode == 0, proc.stderr
        (root / "run.stderr").write_text(proc.stderr)
        (root / "done").write_text("")
    return root


def fake_fit(effect, noise: float = 0.005):
    """A stand-in for a trial's training (``objectives.Objective``'s ``fit``): a function of the configuration plus
    seeded noise, instantly.

    The validation accuracy after epoch e is ``level * (1 - 0.5**e)``, with ``level = 0.6 + effect(config)
    - 0.1 |log10(lr / 0.01)|`` plus noise drawn from the seed and the hyperparameters only: in two cells that try
    the same hyperparameters the curves differ by the cells' effects alone. The test accuracy adds noise drawn
    from the seed and the cell, as replicates of different cells are different runs.
    """
    import math
    import random

    from objectives import EpochMetrics, TrainResult

    def fit(cfg, on_epoch, keep_weights):
        hyper = (cfg.training.seed, cfg.training.lr, cfg.model.beta)
        level = 0.6 + effect(cfg) - 0.1 * abs(math.log10(cfg.training.lr / 0.01)) + random.Random(repr(hyper)).gauss(
            0, noise)
        history = []
        for epoch in range(1, cfg.training.epochs + 1):
            m = EpochMetrics(epoch=epoch, train_loss=1 / epoch, train_acc=level, val_acc=level * (1 - 0.5**epoch),
                             spike_rates=(0.1, 0.05, 0.2), seconds=0.0, train_samples_per_s=1.0)
            history.append(m)
            on_epoch(m)
        best = max(history, key=lambda m: m.val_acc)
        cell = (cfg.model.neuron, cfg.model.surrogate, cfg.training.backprop)
        test = level + random.Random(repr((*hyper, *cell))).gauss(0, noise)
        return TrainResult(val_acc=best.val_acc, best_epoch=best.epoch, test_acc=test, epochs=len(history),
                           seconds=0.0, train_samples_per_s=1.0, spike_rates=best.spike_rates, n_params=1,
                           costs=_fake_costs(test, cfg.model.num_steps),
                           val_costs=_fake_costs(best.val_acc, cfg.model.num_steps), history=history)

    return fit


def _fake_costs(accuracy: float, steps: int):
    """What a fake trial's network costs: nothing, read out at any step with ``accuracy``."""
    from objectives import CostMetrics

    layers, nothing = ("conv1", "conv2", "output"), (0.0, 0.0, 0.0)
    return CostMetrics(n_samples=1, num_steps=steps, layers=layers, layer_neurons=(1, 1, 1),
                       layer_spikes_per_sample=nothing, layer_activation_sparsity=(1.0, 1.0, 1.0),
                       layer_dead_fraction=(1.0, 1.0, 1.0), layer_saturated_fraction=nothing,
                       layer_effective_macs=nothing, layer_effective_acs=nothing, layer_dense_synops=nothing,
                       spikes_per_sample=0.0, activation_sparsity=1.0, effective_macs=0.0, effective_acs=0.0,
                       synops=0.0, dense_synops=0.0, footprint_bytes=0, connection_sparsity=0.0,
                       energy_proxy_uj=0.0, accuracy_by_step=(accuracy,) * steps, accuracy=accuracy, decision_step=1)


MIXED = "mixed"
#: the trials of :func:`mixed_study` by neuron: ``(surrogate, backprop, state, validation accuracy per epoch)``;
#: synaptic's trials were all pruned, alpha's all failed before their first epoch
MIXED_TRIALS = {
    "leaky": [("atan", "bptt", "COMPLETE", (0.80, 0.90)), ("fast_sigmoid", "bptt", "COMPLETE", (0.82, 0.93)),
              ("atan", "bptt", "COMPLETE", (0.85, 0.91)), ("fast_sigmoid", "bptt", "COMPLETE", (0.70, 0.88)),
              ("atan", "bptt", "COMPLETE", (0.86, 0.94)), ("atan", "tbptt", "COMPLETE", (0.60, 0.75)),
              ("fast_sigmoid", "bptt", "PRUNED", (0.40,)), ("atan", "tbptt", "PRUNED", (0.35,))],
    "synaptic": [("atan", "bptt", "PRUNED", (0.30,)), ("fast_sigmoid", "bptt", "PRUNED", (0.45,)),
                 ("atan", "tbptt", "PRUNED", (0.20,))],
    "alpha": [("atan", "bptt", "FAIL", ()), ("fast_sigmoid", "bptt", "FAIL", ())],
}


def mixed_study(folder: Path) -> str:
    """A study written directly (no training) with complete, pruned and failed trials (:data:`MIXED_TRIALS`), its
    per-epoch rows and its config; returns the storage URL of ``folder/study.db``."""
    import datetime

    from optuna.distributions import CategoricalDistribution

    from objectives import STUDY_CONFIG_ATTR, EpochMetrics, TrialConfig, TrialRecord
    from storage import EpochLog

    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / 'study.db'}"
    study = optuna.create_study(study_name=MIXED, storage=url, direction="maximize")
    study.set_user_attr(STUDY_CONFIG_ATTR, {
        "study": {"name": MIXED, "sampler": "random", "seed": 3,
                  "pruner": {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 0, "patience": None}},
        "dataset": {"name": "synthetic", "val_size": 200, "train_subset": 400}, "training": {"epochs": 2}})
    log = EpochLog(url)
    choices = {k: CategoricalDistribution(sorted({t[i] for ts in MIXED_TRIALS.values() for t in ts}))
               for i, k in ((0, "surrogate"), (1, "backprop"))}
    space = {"neuron": CategoricalDistribution(sorted(MIXED_TRIALS)), **choices}
    start = datetime.datetime(2025, 1, 1)
    n = 0
    for neuron, trials in MIXED_TRIALS.items():
        for surrogate, backprop, state, accs in trials:
            config = TrialConfig.from_dict({
                "dataset": {"name": "synthetic", "val_size": 200, "train_subset": 400},
                "model": {"neuron": neuron, "surrogate": surrogate},
                "training": {"backprop": backprop, "epochs": 2, "seed": 0}}).to_dict()
            rates = (0.1 + 0.01 * n, 0.05, 0.2)
            attrs = {"config": config}
            if state == "COMPLETE":
                attrs.update(test_acc=max(accs) - 0.02, best_epoch=accs.index(max(accs)) + 1, epochs=len(accs),
                             spike_rates=rates)
            elif state == "PRUNED":
                attrs.update(pruned_at=len(accs))
            else:
                attrs.update(failure="TrainingDiverged: the loss is NaN")
            frozen = optuna.trial.FrozenTrial(
                number=n, trial_id=n, state=TrialState[state], value=max(accs) if state == "COMPLETE" else None,
                values=None, datetime_start=start + datetime.timedelta(minutes=n),
                datetime_complete=start + datetime.timedelta(minutes=n, seconds=30),
                params={"neuron": neuron, "surrogate": surrogate, "backprop": backprop}, distributions=space,
                user_attrs=TrialRecord.attrs(**attrs), system_attrs={},
                intermediate_values={e + 1: a for e, a in enumerate(accs)})
            study.add_trial(frozen)
            number = study.trials[-1].number
            for e, acc in enumerate(accs):
                log.record(MIXED, number, study.trials[-1]._trial_id, EpochMetrics(
                    epoch=e + 1, train_loss=1.0 / (e + 1), train_acc=acc, val_acc=acc, spike_rates=rates, seconds=1.0,
                    train_samples_per_s=100.0))
            n += 1
    return url
