"""Exporting the best configurations of a study as run configs that ``snn-study train`` re-runs as they are."""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from objectives import (
    COMBINATION,
    GROUP_FIELDS,
    Combination,
    ConfigError,
    TrialConfig,
    TrialRecord,
    cell_study_name,
    config_value,
    file_stem,
    foreign_study,
)
from storage import study_names, write_all_atomic

from ._stages import tuned_trial


def completed_trials(storage, name: str) -> list[TrialRecord]:
    """The record of every complete trial of ``name`` (and its per-combination studies)."""
    out = []
    for study_name in study_names(storage, name):
        study = optuna.load_study(study_name=study_name, storage=storage)
        problem = foreign_study([d.name for d in study.directions], study.user_attrs)
        if problem:
            raise ConfigError("--study", study_name, problem)
        out += [TrialRecord.from_frozen_trial(study_name, t)
                for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    return out


def parse_by(value: str) -> list[str]:
    """``"neuron,surrogate"`` -> ``["neuron", "surrogate"]``, checked against ``objectives.GROUP_FIELDS``."""
    keys = list(dict.fromkeys(k.strip() for k in value.split(",") if k.strip()))
    for k in keys:
        if k not in GROUP_FIELDS:
            raise ConfigError("--by", k, f"allowed: {', '.join(GROUP_FIELDS)}")
    if not keys:
        raise ConfigError("--by", value, f"name at least one of {', '.join(GROUP_FIELDS)}")
    return keys


def export(
    storage,
    name: str,
    out: Path,
    by: Iterable[str] = ("neuron", "surrogate", "backprop"),
    comparison: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write ``<group>.yaml`` for the best complete trial of each group, and ``best.yaml`` overall.

    Each file is the trial's resolved run config (seed included), with a comment
    header naming the study, the trial and its accuracies. The folder is created (or a
    ``ConfigError`` for ``--out`` raised) once the study is known to have something to write
    and every config to write is valid; each file is written atomically (whole or absent).

    For a comparison (``comparison``: its result, ``reports.comparison_of``) the best of a group is the
    combination with the highest mean over the replicate seeds, and its file is the configuration the
    comparison tuned for it (its tuning trial, at the tuning seed), the replicates' mean and interval in
    the header.
    """
    by = list(by)
    if comparison is not None:
        return _export_comparison(storage, name, out, by, comparison)
    trials = completed_trials(storage, name)
    if not trials:
        raise ConfigError("--study", name, "has no complete trial yet; run it first (snn-study run)")
    foreign = [t for t in trials if t.config is None]
    if foreign:
        raise ConfigError("--study", foreign[0].study, f"trial {foreign[0].number} (and {len(foreign) - 1} more) has "
                          "no snn-study run config to export: another tool wrote it")
    best: dict[tuple, TrialRecord] = {}
    for t in trials:
        key = tuple(config_value(t.config, k) for k in by)
        if key not in best or _value(t) > _value(best[key]):
            best[key] = t
    overall = max(best.values(), key=_value)
    # every config is checked before the first file is written: a bad one must not leave half the results
    groups = sorted(best.items(), key=lambda kv: tuple(map(str, kv[0])))
    files = [(out / (file_stem(key) + ".yaml"), t) for key, t in groups] + [(out / "best.yaml", overall)]
    texts = {path: _text(path, t) for path, t in files}
    _create_out(out)
    try:
        return write_all_atomic(texts)  # all or none: a full disk leaves the folder as it was
    except OSError as exc:
        raise ConfigError("--out", str(out), f"writing the files failed ({exc.strerror or exc}); nothing was "
                                             "written") from None


def _export_comparison(storage, name: str, out: Path, by: list[str], comparison: Mapping[str, Any]) -> list[Path]:
    cells = [c for c in comparison["cells"] if c["mean"] is not None]  # best mean first
    if not cells:
        raise ConfigError("--study", name, "has no replicate run done yet; finish it first (snn-study compare)")
    tuned: list[tuple[TrialRecord, Mapping[str, Any]]] = []
    for cell in cells:
        study_name = cell_study_name(name, Combination(*(cell[f] for f in COMBINATION)), "tune")
        trial = tuned_trial(optuna.load_study(study_name=study_name, storage=storage))
        if trial is not None:
            tuned.append((TrialRecord.from_frozen_trial(study_name, trial), cell))
    best: dict[tuple, tuple[TrialRecord, Mapping[str, Any]]] = {}
    for record, cell in tuned:  # best mean first: the first of each group is its best
        best.setdefault(tuple(config_value(record.config, k) for k in by), (record, cell))
    conf = f"{comparison['confidence'] * 100:g} %"

    def text(path: Path, record: TrialRecord, cell: Mapping[str, Any]) -> str:
        interval = "" if cell["ci_low"] is None else f", {conf} CI {cell['ci_low']:.4f} to {cell['ci_high']:.4f}"
        return _text(path, record, f"# comparison {name!r}: mean {comparison['value']} {cell['mean']:.4f} over "
                                   f"{cell['n']} replicate seeds{interval}\n")

    groups = sorted(best.items(), key=lambda kv: tuple(map(str, kv[0])))
    files = [(out / (file_stem(key) + ".yaml"), pair) for key, pair in groups] + [(out / "best.yaml", tuned[0])]
    texts = {path: text(path, *pair) for path, pair in files}  # every config checked before a file is written
    _create_out(out)
    try:
        return write_all_atomic(texts)
    except OSError as exc:
        raise ConfigError("--out", str(out), f"writing the files failed ({exc.strerror or exc}); nothing was "
                                             "written") from None


def _value(trial: TrialRecord) -> float:
    """A complete trial's validation accuracy (every complete trial has one)."""
    return -math.inf if trial.value is None else trial.value


def _create_out(out: Path) -> None:
    """Create ``out`` (a folder for results) or fail with one line."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError("--out", str(out), f"cannot create it ({exc.strerror}); choose a writable folder") from None
    if not os.access(out, os.W_OK):
        raise ConfigError("--out", str(out), "not writable; choose a writable folder")


def _text(path: Path, trial: TrialRecord, comment: str = "") -> str:
    """The YAML file of ``trial``'s run config, validated: it must re-run as it is."""
    if trial.config is None:
        raise ConfigError("--study", trial.study, f"trial {trial.number} holds no run config (was it written by "
                                                  "snn-study?); nothing written")
    try:
        config = TrialConfig.from_dict(trial.config).to_dict()
    except ConfigError as exc:
        raise ConfigError("--study", trial.study, f"the run config of trial {trial.number} is not valid "
                                                  f"({exc}); nothing written") from None
    test = trial.test_acc if trial.test_acc is not None else float("nan")
    header = (
        comment
        + f"# best of study {trial.study!r}: trial {trial.number}, validation accuracy {_value(trial):.4f}, "
        f"test accuracy {test:.4f}\n"
        f"# re-run: snn-study train --config {shlex.quote(path.name)}\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False)
