"""The Pareto set of a study of several objectives: which trials it holds, and ``best``'s export of them.

A complete trial is Pareto-optimal when no other complete trial is at least as good in every
objective and better in one (Optuna's ``Study.best_trials``). Over a study and its per-combination
studies the set is taken over all their trials together, so it is the front of the whole comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import optuna

from objectives import ConfigError, TrialRecord, file_stem
from reports import pareto_front
from storage import load_ours, open_storage, study_names

from ._best import Exported, Weights, completed_trials, write_configs
from ._objectives import ACCURACY, OBJECTIVE_METRICS, short_name


def objectives_of(storage, name: str) -> list[str]:
    """The objectives study ``name`` (or its first per-combination study) optimizes; ``["val_acc"]`` for a study
    of one objective that does not name it."""
    # refused before its objectives are read: another tool's names mean nothing here
    study = load_ours(storage, study_names(storage, name)[0], shown=name)
    names = study.metric_names or ([ACCURACY] if len(study.directions) == 1 else [])
    if not names or any(n not in OBJECTIVE_METRICS for n in names):
        raise ConfigError("--study", name, f"optimizes objectives snn-study does not know ({names or 'unnamed'}); "
                          f"allowed: {', '.join(OBJECTIVE_METRICS)}")
    return list(names)


def several_objectives(storage, name: str) -> bool:
    """Whether study ``name`` (or its first per-combination study) optimizes more than one objective."""
    return len(optuna.load_study(study_name=study_names(storage, name)[0], storage=storage).directions) > 1


def export_pareto(storage, name: str, out: Path, weights: Weights) -> Exported:
    """Write one run config per Pareto-optimal complete trial of ``name``, most accurate first:
    ``pareto-01-val0.9512-synops2.3M.yaml`` (the rank, then each objective's value), as
    :func:`study._best.write_configs` writes them (all or none, where the weights are). The folder is created
    once the study is known to have something to write."""
    names = objectives_of(storage, name)
    trials = completed_trials(storage, name)
    if not trials:
        raise ConfigError("--study", name, "has no complete trial yet; run it first (snn-study run)")
    optimal = pareto_front([t.values for t in trials], [OBJECTIVE_METRICS[n].direction for n in names])
    front = [trials[i] for i in optimal]
    front.sort(key=lambda t: (-t.values[0], t.study, t.number))
    width = max(2, len(str(len(front))))
    files = [(out / (file_stem(("pareto", f"{rank:0{width}d}", *short_name(names, t.values))) + ".yaml"), t,
              _title(t, names, rank, len(front))) for rank, t in enumerate(front, 1)]
    return write_configs(storage, out, files, weights)


def _title(trial: TrialRecord, names: Sequence[str], rank: int, size: int) -> str:
    values = ", ".join(f"{OBJECTIVE_METRICS[n].label} {v:.6g}" for n, v in zip(names, trial.values))
    test = trial.test_acc if trial.test_acc is not None else float("nan")
    return (f"# Pareto-optimal trial {rank} of {size} of study {trial.study!r}: trial {trial.number} "
            f"({trial.combination.label})\n# {values}; test accuracy {test:.4f}\n")


def pareto_size(url: str, name: str) -> int | None:
    """How many complete trials of study ``name`` (one study) in the storage at ``url`` are Pareto-optimal;
    ``None`` for another tool's study, whose objectives are not ours to rank."""
    storage = open_storage(url, read_only=True, heartbeat_interval=None)
    try:
        return len(load_ours(storage, name).best_trials)
    except ConfigError:
        return None
