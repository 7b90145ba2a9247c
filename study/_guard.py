"""What keeps a study whole: one config per study, no stranger's study joined, no trial left hanging.

A study's trials are comparable only if they ran under one config. Its *fingerprint* is
every setting that changes what a trial means (the run config but for where it runs,
the search space, sampler, pruner and objective) and where its weights are kept, stored
in the study when it is created. A later run whose fingerprint differs is refused before it writes anything,
naming the first field that differs. Settings that only say how a study is run
(workers, devices, n_trials, heartbeats, the storage URL's spelling) may change.

Extending a search space (a neuron added to a list, a range widened or turned into a
list) is such a change: Optuna fixes each parameter's distribution within a study, and
the trials already run were drawn from the old space. Run the extended config as a new
study (``--study-name``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import tempfile
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import optuna
from optuna.trial import TrialState

from objectives import NEURON_SPECS, STUDY_CONFIG_ATTR, SURROGATE_SPECS, ConfigError
from storage import artifact_dir, shown_url, trial_id, trials_with_heartbeat

from ._config import StudyConfig
from ._objectives import directions, objective_of
from ._space import Range, SearchSpace

#: the study user attribute holding the study's fingerprint (``{field: value}``)
FINGERPRINT_ATTR = "study_fingerprint"
#: run-config fields that say where a trial runs or finds its data, not what it is
NOT_MEANING = ("dataset.root", "dataset.download", "training.device")
#: what a study's refusal tells the user to do
_HOW = ("a study keeps the config its trials ran with (extending a search makes a new study): run this config "
        "under a new --study-name, or resume with the study's own config")


def fingerprint(cfg: StudyConfig, space: SearchSpace) -> dict[str, Any]:
    """Every setting of the study ``space`` of ``cfg`` that changes what its trials mean, ``{field: value}`` in a
    fixed order (as stored: lists, not tuples)."""
    out: dict[str, Any] = {"objective": objective_of(cfg.study.objectives), "study.sampler": cfg.study.sampler,
                           "study.per_combination": cfg.study.per_combination, "study.artifacts": cfg.study.artifacts}
    out.update({f"study.pruner.{k}": v for k, v in dataclasses.asdict(cfg.study.pruner).items()})
    searched: dict[str, Any] = {c.key: list(c.choices) for c in space.categorical}
    searched.update({r.key: r.low if r.fixed else {"low": r.low, "high": r.high, "log": r.log, "step": r.step}
                     for r in space.ranges})
    out.update({f"search.{k}": searched[k] for k in space.search if k in searched})  # fixed scalars are in the base
    # a searched field's base value is never used; the search entry above says what the trials ran with
    drawn = {c.path for c in space.categorical} | {r.path for r in space.ranges if not r.fixed}
    for section, values in space.base.resolved().to_dict().items():
        out.update({f"{section}.{k}": v for k, v in values.items()
                    if f"{section}.{k}" not in NOT_MEANING and f"{section}.{k}" not in drawn})
    return json.loads(json.dumps(out, default=str))


def check_joinable(cfg: StudyConfig, storage: optuna.storages.BaseStorage) -> None:
    """Refuse (:class:`ConfigError`, before anything is written) to run ``cfg`` into a study of the same name that
    optimizes something else, was written by another tool, or ran its trials under another config."""
    wanted = [optuna.study.StudyDirection[d.upper()] for d in directions(cfg.study.objectives)]
    objective = objective_of(cfg.study.objectives)
    existing = {s.study_name: s for s in storage.get_all_studies()}
    for name, space in cfg.studies():
        found = existing.get(name)
        if found is None:
            continue
        theirs = _stored_objectives(found.user_attrs)
        if theirs is not None and theirs != list(cfg.study.objectives):
            raise ConfigError("study.objectives", list(cfg.study.objectives), f"study {name!r} in the storage "
                              f"optimizes {theirs}; keep its objectives or choose another study.name")
        if list(found.directions) != wanted:
            what = (f"has {len(found.directions)} objectives" if len(found.directions) > 1
                    else f"{found.directions[0].name.lower()}s its objective")
            raise ConfigError("study.name", name, f"a study of this name is already in the storage and {what}; "
                              f"snn-study studies {objective}: choose another --study-name")
        stored = _stored_fingerprint(found.user_attrs, name)
        if stored is None:
            n = len(storage.get_all_trials(storage.get_study_id_from_name(name), deepcopy=False))
            if n:
                raise ConfigError("study.name", name, f"a study of this name is already in the storage with {n} "
                                  "trials that snn-study did not write (no study config): choose another --study-name")
            continue
        _compare(name, stored, fingerprint(cfg, space))


def _stored_objectives(attrs: Mapping[str, Any]) -> list[str] | None:
    """The objectives of a study snn-study wrote (from its stored config: ``[val_acc]`` before there was a
    choice), ``None`` for another tool's."""
    config = attrs.get(STUDY_CONFIG_ATTR)
    section = config.get("study") if isinstance(config, Mapping) else None
    if not isinstance(section, Mapping):
        return None
    objectives = section.get("objectives", ["val_acc"])
    return list(objectives) if isinstance(objectives, (list, tuple)) else None


def record(study: optuna.Study, cfg: StudyConfig, space: SearchSpace) -> None:
    """Store the fingerprint of ``space`` in ``study``; a :class:`ConfigError` if another config's got there first."""
    mine = fingerprint(cfg, space)
    stored = study.user_attrs.get(FINGERPRINT_ATTR)
    if isinstance(stored, Mapping):
        _compare(study.study_name, stored, mine)
    else:
        study.set_user_attr(FINGERPRINT_ATTR, mine)


def _stored_fingerprint(attrs: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    """The study's fingerprint; for a study written before fingerprints were, the one of its stored config."""
    stored = attrs.get(FINGERPRINT_ATTR)
    if isinstance(stored, Mapping):
        return stored
    config = attrs.get(STUDY_CONFIG_ATTR)
    if not isinstance(config, Mapping):
        return None
    try:
        old = StudyConfig.from_dict(config)
    except ConfigError as exc:
        raise ConfigError("study.name", name, f"the study's stored config no longer reads ({exc}), so this run "
                          "cannot be checked against it: choose another --study-name") from None
    space = dict(old.studies()).get(name)
    if space is None:
        raise ConfigError("study.name", name, "the study's stored config does not name it: choose another --study-name")
    return fingerprint(old, space)


def _compare(name: str, stored: Mapping[str, Any], mine: Mapping[str, Any]) -> None:
    for key in [*mine, *(k for k in stored if k not in mine)]:
        if key not in stored:
            raise ConfigError(key, mine[key], f"study {name!r} ran its trials without it; {_HOW}")
        if key not in mine:
            raise ConfigError(key, None, f"study {name!r} ran its trials with {stored[key]!r}; {_HOW}")
        if not _same(stored[key], mine[key]):
            raise ConfigError(key, mine[key], f"study {name!r} ran its trials with {stored[key]!r}; {_HOW}")


def _same(a: Any, b: Any) -> bool:
    """Equal as config values: 1 and 1.0 alike, NaN equal to itself, lists and mappings item by item."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or (math.isnan(a) and math.isnan(b))
    return type(a) is type(b) and a == b


def stored_config(cfg: StudyConfig) -> dict[str, Any]:
    """The config as a study keeps it (``STUDY_CONFIG_ATTR``, which optuna-dashboard shows): ``cfg.to_dict()`` with
    the storage URL's password hidden."""
    out = cfg.to_dict()
    out["study"] = {**out["study"], "storage": shown_url(cfg.study.storage)}
    return out


def check_artifacts(cfg: StudyConfig) -> None:
    """Refuse (:class:`ConfigError`) an artifact folder that cannot be written, before any trial trains."""
    folder = artifact_dir(cfg.study.storage, cfg.study.artifacts)
    created = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder) as probe:  # access() would let root pass a read-only mount
            probe.write(b"weights")
            probe.flush()
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise ConfigError("study.artifacts", str(folder), f"the trials' weights cannot be written there ({why}); "
                          "choose a writable folder") from None
    finally:
        # a check writes nothing: the first weights create the folder again (a folder another worker has
        # written into meanwhile is not empty, and stays)
        for path in created:
            try:
                path.rmdir()
            except OSError:
                break


def claimable(space: SearchSpace, params: Mapping[str, Any]) -> bool:
    """Whether a queued trial with ``params`` belongs to ``space``: each parameter one it suggests, within its
    choices or range. Another config's queued trial is left waiting, never run (and failed) with this one.

    A categorical is suggested under its key, or under ``<values>.<key>`` where earlier values narrow it.
    """
    choices = {c.key: c.choices for c in space.categorical}
    for name, value in params.items():
        key = name if name in choices else name.rpartition(".")[2]
        if key in choices and (key == name or _range_of(space, name) is None):
            if value not in choices[key]:
                return False
            continue
        r = _range_of(space, name)
        if r is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if not r.fixed and not r.low <= value <= r.high:
            return False
    return True


def _range_of(space: SearchSpace, name: str) -> Range | None:
    """The range a parameter name comes from: its key, ``<surrogate>.<param>``, or ``<neuron>.<key>``."""
    for r in space.ranges:
        if r.path.startswith("surrogate_args."):
            owner, _, param = name.rpartition(".")
            if owner in SURROGATE_SPECS and param == r.path.split(".", 1)[1]:
                return r
        elif name == r.key or any(name == f"{n}.{r.key}" for n in NEURON_SPECS):
            return r
    return None


def fail_silent_trials(study: optuna.Study, storage: optuna.storages.RDBStorage, grace_period: float) -> None:
    """Fail, and re-queue through the storage's stale-trial callback, each running trial that has never sent a
    heartbeat and started more than ``grace_period`` seconds ago.

    Its worker died between taking the trial and its first heartbeat (a few milliseconds,
    at the start of every trial). Optuna's own stale check sees only trials with a
    heartbeat, so without this every later run would wait for the trial for ever.
    """
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return
    beating = trials_with_heartbeat(storage, storage.get_study_id_from_name(study.study_name))
    now = datetime.now()  # Optuna's datetime_start is local time, as this
    callback = storage.get_heartbeat_stale_trial_callback()
    for t in running:
        started = t.datetime_start
        if trial_id(t) in beating or started is None or (now - started).total_seconds() <= grace_period:
            continue
        try:
            failed = storage.set_trial_state_values(trial_id(t), state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # finished or failed by another worker since we read it
        if failed and callback is not None:
            callback(study, copy.deepcopy(storage.get_trial(trial_id(t))))
