"""Optuna's private names the project cannot do without, each behind one function.

Checked against Optuna 4.x and 5.0.0. ``tests/storage/test_optuna_private.py`` fails
loudly when one of them changes, so an Optuna upgrade breaks here and nowhere else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import optuna
import sqlalchemy
from optuna.storages._rdb import models


def trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """The storage's id of ``trial``, which Optuna's storages key on but expose only as ``_trial_id``."""
    return trial._trial_id


def trial_of(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> optuna.Trial:
    """The live ``optuna.Trial`` of a trial this process has just claimed (set RUNNING) in ``study``: what
    ``study.ask()`` makes of a queued trial it pops."""
    return optuna.Trial(study, frozen._trial_id)


def trials_with_heartbeat(storage: optuna.storages.RDBStorage, study_id: int) -> set[int]:
    """Ids of the trials of study ``study_id`` that have recorded a heartbeat.

    Optuna's stale-trial check (``fail_stale_trials``) looks only at these: a trial whose
    worker died before its first heartbeat stays RUNNING for ever unless the caller checks
    the others itself. The heartbeat table is Optuna's private schema.
    """
    beats, trials = models.TrialHeartbeatModel, models.TrialModel
    query = sqlalchemy.select(beats.trial_id).join(trials, trials.trial_id == beats.trial_id).where(
        trials.study_id == study_id)
    with storage.engine.connect() as conn:
        return set(conn.execute(query).scalars())


def set_study_system_attrs(storage: optuna.storages.RDBStorage, attrs: Mapping[int, Mapping[str, Any]]) -> None:
    """Set study system attributes (``{study_id: {key: value}}``) in ONE transaction: all of them or, on any
    error or a kill, none. Optuna's ``set_study_system_attr`` commits each key alone, so a value that
    optuna-dashboard splits over many keys (a figure's JSON, a note) could be left half new, half old."""
    session = storage.scoped_session()
    try:
        for study_id, items in attrs.items():
            study = models.StudyModel.find_or_raise_by_id(study_id, session)
            for key, value in items.items():
                row = models.StudySystemAttributeModel.find_by_study_and_key(study, key, session)
                if row is None:
                    row = models.StudySystemAttributeModel(study_id=study_id, key=key)
                    session.add(row)
                row.value_json = json.dumps(value)
        session.commit()
    except BaseException:
        session.rollback()
        raise
