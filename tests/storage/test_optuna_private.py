"""Optuna's private names behind storage's adapter (checked against Optuna 4.x and 5.0): this fails loudly,
naming the Optuna version, the day one of them changes."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from storage import set_study_system_attrs, trial_id, trial_of

VERSION = f"Optuna {optuna.__version__}"


def test_trial_id_is_the_id_the_storage_keys_a_trial_on():
    study = optuna.create_study()
    trial = study.ask()
    frozen = study.trials[0]
    assert trial_id(trial) == trial_id(frozen), VERSION
    assert study._storage.get_trial(trial_id(trial)).number == trial.number, VERSION


def test_a_claimed_queued_trial_becomes_a_live_trial_with_its_queued_parameters():
    study = optuna.create_study()
    study.enqueue_trial({"x": 3})
    queued = study.get_trials(states=(TrialState.WAITING,))[0]
    assert study._storage.set_trial_state_values(trial_id(queued), state=TrialState.RUNNING), VERSION
    trial = trial_of(study, queued)
    assert isinstance(trial, optuna.Trial) and trial.number == queued.number, VERSION
    assert trial.suggest_int("x", 0, 10) == 3, VERSION
    study.tell(trial, 1.0)
    assert study.trials[0].state == TrialState.COMPLETE, VERSION


def test_study_system_attrs_are_set_in_one_transaction_all_or_none(tmp_path):
    """What optuna-dashboard reads of a report (a figure's JSON in chunks) is written whole or not at all."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = optuna.storages.RDBStorage(url)
    study = optuna.create_study(study_name="s", storage=storage)
    sid = storage.get_study_id_from_name("s")
    storage.set_study_system_attr(sid, "dashboard:kept", "old")
    set_study_system_attrs(storage, {sid: {"dashboard:kept": "new", "dashboard:added": [1, 2]}})
    assert storage.get_study_system_attrs(sid) == {"dashboard:kept": "new", "dashboard:added": [1, 2]}, VERSION
    with pytest.raises(TypeError):  # the second value is not JSON: the first must not be written either
        set_study_system_attrs(storage, {sid: {"dashboard:kept": "newer", "dashboard:bad": object()}})
    assert storage.get_study_system_attrs(sid) == {"dashboard:kept": "new", "dashboard:added": [1, 2]}, VERSION
    assert study.study_name == "s"
