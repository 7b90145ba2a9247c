"""Exporting the best configurations of a study as run configs that ``snn-study train`` re-runs as they are."""

from __future__ import annotations

import collections
import math
import os
import shlex
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from objectives import (
    COMBINATION,
    DATA_ENV,
    GROUP_FIELDS,
    STUDY_CONFIG_ATTR,
    Combination,
    ConfigError,
    TrialConfig,
    TrialRecord,
    cell_study_name,
    config_value,
    file_stem,
)
from storage import artifact_dir, load_ours, shown_url, study_attrs, study_names, trial_weights, write_all_atomic

from ._stages import tuned_trial


@dataclass(frozen=True)
class Weights:
    """Where the exported trials' weights are: the storage ``url`` and the artifact folder ``artifacts`` (default:
    the study's); ``copy``: write each one beside its config (``<stem>.pt``, a ``torch.save``'d state dict)."""

    url: str
    artifacts: str | None = None
    copy: bool = False


@dataclass
class Exported:
    """What ``best`` wrote, and one line for each group it wrote nothing for, or no weights, saying why."""

    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def completed_trials(storage, name: str) -> list[TrialRecord]:
    """The record of every complete trial of ``name`` (and its per-combination studies)."""
    out = []
    for study_name in study_names(storage, name):
        study = load_ours(storage, study_name)
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
    weights: Weights,
    by: Iterable[str] = ("neuron", "surrogate", "backprop"),
    comparison: Mapping[str, Any] | None = None,
) -> Exported:
    """Write ``<group>.yaml`` for the best complete trial of each group, and ``best.yaml`` overall.

    Each file is the trial's resolved run config (seed included), with a comment
    header naming the study, the trial, its accuracies and where its weights are (:func:`write_configs`).
    The folder is created (or a ``ConfigError`` for ``--out`` raised) once the study is known to have
    something to write and every config to write is valid; the files are written all or none. A group
    whose trials all ended without a result (pruned, failed, still running) gets no file and a line in
    :attr:`Exported.skipped`.

    For a comparison (``comparison``: its result, ``reports.comparison_of``) the best of a group is the
    combination with the highest mean over the replicate seeds, and its file is the configuration the
    comparison tuned for it (its tuning trial, at the tuning seed), the replicates' mean and interval in
    the header.
    """
    by = list(by)
    if comparison is not None:
        return _export_comparison(storage, name, out, weights, by, comparison)
    trials = completed_trials(storage, name)
    if not trials:
        raise ConfigError("--study", name, "has no complete trial yet; run it first (snn-study run)")
    foreign = [t for t in trials if t.config is None]
    if foreign:
        raise ConfigError("--study", foreign[0].study, f"trial {foreign[0].number} (and {len(foreign) - 1} more) has "
                          "no snn-study run config to export: another tool wrote it")
    best: dict[tuple, TrialRecord] = {}
    for t in trials:
        key = _group(t, by)
        if key not in best or _value(t) > _value(best[key]):
            best[key] = t
    overall = max(best.values(), key=_value)
    groups = sorted(best.items(), key=lambda kv: tuple(map(str, kv[0])))
    files = [(out / (file_stem(key) + ".yaml"), t, _title(t)) for key, t in groups]
    files.append((out / "best.yaml", overall, _title(overall)))
    exported = write_configs(storage, out, files, weights)
    exported.skipped[:0] = _unfinished_groups(storage, name, by, set(best))
    return exported


def _group(trial: TrialRecord, by: list[str]) -> tuple:
    """The group of ``trial``: its values of the ``by`` fields (a factor from wherever the trial says it)."""
    combination = trial.combination
    return tuple(getattr(combination, k) if k in COMBINATION and trial.config is None else
                 config_value(trial.config, k) for k in by)


def _unfinished_groups(storage, name: str, by: list[str], done: set[tuple]) -> list[str]:
    """A line for each group of study ``name`` that has trials but no complete one, with how they ended."""
    states: dict[tuple, collections.Counter] = collections.defaultdict(collections.Counter)
    for study_name in study_names(storage, name):
        study = optuna.load_study(study_name=study_name, storage=storage)
        for frozen in study.get_trials(deepcopy=False):
            key = _group(TrialRecord.from_frozen_trial(study_name, frozen), by)
            if key not in done:
                states[key][frozen.state.name.lower()] += 1
    return [f"{'/'.join(map(str, key))}: no complete trial ("
            + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) + ")"
            for key, counts in sorted(states.items(), key=lambda kv: tuple(map(str, kv[0])))]


def _export_comparison(storage, name: str, out: Path, weights: Weights, by: list[str],
                       comparison: Mapping[str, Any]) -> Exported:
    skipped = [f"{'/'.join(c[f] for f in COMBINATION)}: no replicate run done yet"
               for c in comparison["cells"] if c["mean"] is None]
    cells = [c for c in comparison["cells"] if c["mean"] is not None]  # best mean first
    if not cells:
        raise ConfigError("--study", name, "has no replicate run done yet; finish it first (snn-study compare)")
    tuned: list[tuple[TrialRecord, Mapping[str, Any]]] = []
    for cell in cells:
        study_name = cell_study_name(name, Combination(*(cell[f] for f in COMBINATION)), "tune")
        trial = tuned_trial(optuna.load_study(study_name=study_name, storage=storage))
        if trial is not None:
            tuned.append((TrialRecord.from_frozen_trial(study_name, trial), cell))
        else:
            skipped.append(f"{'/'.join(cell[f] for f in COMBINATION)}: no complete tuning trial")
    best: dict[tuple, tuple[TrialRecord, Mapping[str, Any]]] = {}
    for record, cell in tuned:  # best mean first: the first of each group is its best
        best.setdefault(tuple(config_value(record.config, k) for k in by), (record, cell))
    conf = f"{comparison['confidence'] * 100:g} %"

    def title(record: TrialRecord, cell: Mapping[str, Any]) -> str:
        interval = "" if cell["ci_low"] is None else f", {conf} CI {cell['ci_low']:.4f} to {cell['ci_high']:.4f}"
        return (f"# comparison {name!r}: mean {comparison['value']} {cell['mean']:.4f} over {cell['n']} replicate "
                f"seeds{interval}\n" + _title(record))

    groups = sorted(best.items(), key=lambda kv: tuple(map(str, kv[0])))
    files = [(out / (file_stem(key) + ".yaml"), pair[0], title(*pair)) for key, pair in groups]
    files.append((out / "best.yaml", tuned[0][0], title(*tuned[0])))
    exported = write_configs(storage, out, files, weights)
    exported.skipped[:0] = skipped
    return exported


def _title(trial: TrialRecord) -> str:
    test = trial.test_acc if trial.test_acc is not None else float("nan")
    return (f"# best of study {trial.study!r}: trial {trial.number}, validation accuracy {_value(trial):.4f}, "
            f"test accuracy {test:.4f}\n")


def write_configs(storage, out: Path, files: list[tuple[Path, TrialRecord, str]], weights: Weights) -> Exported:
    """Write each trial's run config to its path, under its ``title`` (comment lines) and a header saying where
    its weights are and how to re-run it; with ``weights.copy`` its weights too, as ``<stem>.pt`` beside it.

    Every config is validated and every weights file read before the first file is written, and the files are
    written all or none (a full disk leaves the folder as it was). The data folder the trial read is left out of
    the config (``dataset.root: null``: ``$SNN_STUDY_DATA``, else ``data/``) unless the study's config named one.
    A trial whose weights cannot be copied still gets its config, and a line in :attr:`Exported.skipped`; a
    ``<stem>.pt`` an earlier export left beside a config written without weights is removed (it would load into
    the new config's model as if it were its own).
    """
    exported = Exported()
    texts: dict[Path, str | bytes] = {}
    attrs: dict[str, dict[str, Any]] = {}
    for path, trial, title in files:
        if trial.study not in attrs:
            attrs[trial.study] = study_attrs(storage, trial.study)
        where = _weights_line(path, trial, attrs[trial.study], weights, texts, exported)
        texts[path] = _text(path, trial, attrs[trial.study], title + where)
    _create_out(out)
    try:
        exported.written = write_all_atomic(texts)
    except OSError as exc:
        raise ConfigError("--out", str(out), f"writing the files failed ({exc.strerror or exc}); nothing was "
                                             "written") from None
    for path, _, _ in files:  # weights an earlier export left beside a config they do not belong to
        stale = path.with_suffix(".pt")
        if stale not in texts:
            stale.unlink(missing_ok=True)
    return exported


def _weights_line(path: Path, trial: TrialRecord, attrs: Mapping[str, Any], weights: Weights,
                  texts: dict[Path, str | bytes], exported: Exported) -> str:
    """The header line saying where ``trial``'s weights are; with ``weights.copy``, their bytes put in ``texts``
    (or why not in ``exported.skipped``)."""
    load = (f"storage.load_trial({shown_url(weights.url)!r}, {trial.study!r}, {trial.number}) loads the model")
    if not trial.weights_artifact:
        why = trial.weights_missing or "the trial ran without an artifact store"
        if weights.copy:
            exported.skipped.append(f"{path.name}: no weights for trial {trial.number} of {trial.study!r} ({why})")
        return f"# weights: none saved ({why})\n"
    if weights.copy:
        pt = path.with_suffix(".pt")
        try:
            texts[pt] = trial_weights(weights.url, trial, dict(attrs), weights.artifacts)
        except ConfigError as exc:
            exported.skipped.append(f"{path.name}: no weights copied ({exc})")
        else:
            return (f"# weights: {pt.name} beside this file (a torch state dict for objectives.build_model(cfg)); "
                    f"{load}\n")
    folder = artifact_dir(weights.url, weights.artifacts, attrs)
    return (f"# weights: artifact {trial.weights_artifact} in {folder}; snn-study best --weights copies them here, "
            f"{load}\n")


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


def _named_root(attrs: Mapping[str, Any]) -> str | None:
    """The data folder the study's config named (``dataset.root``), ``None`` when it named none."""
    config = attrs.get(STUDY_CONFIG_ATTR)
    section = config.get("dataset") if isinstance(config, Mapping) else None
    root = section.get("root") if isinstance(section, Mapping) else None
    return root if isinstance(root, str) else None


def _text(path: Path, trial: TrialRecord, attrs: Mapping[str, Any], header: str) -> str:
    """The YAML file of ``trial``'s run config under the comment lines ``header``, validated: it must re-run as
    it is. The data folder is the study config's, or left to ``$SNN_STUDY_DATA`` (else ``data/``) where it
    named none: a trial's resolved folder is where the machine that ran it kept the data."""
    if trial.config is None:
        raise ConfigError("--study", trial.study, f"trial {trial.number} holds no run config (was it written by "
                                                  "snn-study?); nothing written")
    try:
        return config_text(path, TrialConfig.from_dict(trial.config), _named_root(attrs), header)
    except ConfigError as exc:
        raise ConfigError("--study", trial.study, f"the run config of trial {trial.number} is not valid "
                                                  f"({exc}); nothing written") from None


def config_text(path: Path, cfg: TrialConfig, root: str | None, header: str) -> str:
    """The YAML file ``path`` of run config ``cfg`` under the comment lines ``header``, its data folder ``root``:
    the one its user named, or ``None``, which reads ``$SNN_STUDY_DATA`` (else ``data/``) wherever it re-runs (a
    resolved folder is where the machine that ran it kept the data)."""
    config = cfg.replace(**{"dataset.root": root}).to_dict()
    if root is None:
        header += f"# data: dataset.root null reads ${DATA_ENV}, else data/\n"
    return header + f"# re-run: snn-study train --config {shlex.quote(path.name)}\n" + yaml.safe_dump(
        config, sort_keys=False)


def save_paths(value: str) -> tuple[Path, Path]:
    """The weights file ``train --save`` names and the config file beside it (its ``.yaml``), checked before
    anything trains: the folder must exist and take a file (tried, not guessed: ``access()`` lets root pass a
    read-only mount). A ``ConfigError`` on ``--save`` otherwise."""
    weights = Path(value)
    config = weights.with_suffix(".yaml")
    if weights.is_dir():
        raise ConfigError("--save", value, "is a folder; give the weights' file, e.g. model.pt")
    if config == weights:
        raise ConfigError("--save", value, f"names the config's file; give the weights' file, e.g. {weights.stem}.pt "
                                           f"(the config goes to {config.name} beside it)")
    folder = weights.parent
    if not folder.is_dir():
        raise ConfigError("--save", value, f"no such folder {str(folder)!r}; create it first")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ConfigError("--save", value, f"cannot write in {str(folder)!r} ({exc.strerror}); choose a writable "
                                           "folder") from None
    return weights, config


def save_run(paths: tuple[Path, Path], cfg: TrialConfig, root: str | None, state_dict: Mapping[str, Any],
             title: str) -> list[Path]:
    """Write a run's best weights and its config (:func:`config_text` under ``title``) to ``paths``
    (:func:`save_paths`), both or neither; returns them."""
    from objectives import weights_bytes

    weights, config = paths
    header = f"{title}# weights: {weights.name} beside this file (a torch state dict for objectives.build_model(cfg))\n"
    try:
        return write_all_atomic({weights: weights_bytes(dict(state_dict)),
                                 config: config_text(config, cfg, root, header)})
    except OSError as exc:
        raise ConfigError("--save", str(weights), f"writing the files failed ({exc.strerror or exc}); nothing "
                                                  "was written") from None
