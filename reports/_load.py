"""Reading a study (or its per-combination studies) from the database, read-only.

Everything a report shows comes from here: Optuna's trials, the per-epoch metrics
table and the studies' user attributes. Nothing is written; a study that is still
running is read as it stands (running and waiting trials included).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import optuna
from sqlalchemy.engine import make_url

from objectives import TrialRecord, parse_study_name
from storage import EpochLog, load_ours, open_storage, study_names


@dataclass
class StudyData:
    """One study and its per-combination studies (``objectives.cell_study_name``), as read."""

    #: the storage URL as given (``url``) and with any password hidden (``shown``)
    url: str
    shown: str
    #: the name asked for, and the study names it matched (sorted)
    name: str
    study_names: list[str]
    #: ``(study name, trial)`` for every trial, in study then trial-number order
    trials: list[tuple[str, optuna.trial.FrozenTrial]]
    #: the per-epoch table's rows (``storage.EpochLog.read``) with ``study_name`` set, same order
    epochs: list[dict[str, Any]]
    #: each study's user attributes (``study_config`` among them)
    study_attrs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the open Optuna storage, read-only (:mod:`reports._dashboard` opens its own to write its note)
    storage: Any = None
    #: the record of every trial, in the order of ``trials``
    records: list[TrialRecord] = field(default_factory=list)

    @property
    def per_combination(self) -> bool:
        """Whether ``name`` is a parent of per-combination studies rather than one study."""
        return self.study_names != [self.name]


def stage_of(study_name: str) -> str | None:
    """The comparison stage of a study name (``tune``, ``replicate``), ``None`` for any other study."""
    cell = parse_study_name(study_name)
    return cell.stage if cell is not None else None


def load_study_data(url: str, name: str) -> StudyData:
    """Read study ``name`` (and its per-combination studies) from the storage at ``url`` without writing (an
    SQLite file is opened read-only, so one on read-only media is read too).

    Raises :class:`objectives.ConfigError` for a URL that names no study database
    (``study.storage``) or a study that is not there (``--study``).
    """
    storage = open_storage(url, read_only=True, heartbeat_interval=None)
    names = study_names(storage, name)
    log = EpochLog(url, read_only=True)
    trials: list[tuple[str, optuna.trial.FrozenTrial]] = []
    epochs: list[dict[str, Any]] = []
    attrs: dict[str, dict[str, Any]] = {}
    for study_name in names:
        study = load_ours(storage, study_name)
        attrs[study_name] = dict(study.user_attrs)
        trials += [(study_name, t) for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)]
        epochs += log.read(study_name)
    shown = make_url(url).render_as_string(hide_password=True)
    records = [TrialRecord.from_frozen_trial(s, t) for s, t in trials]
    return StudyData(url=url, shown=shown, name=name, study_names=names, trials=trials, epochs=epochs,
                     study_attrs=attrs, storage=storage, records=records)
