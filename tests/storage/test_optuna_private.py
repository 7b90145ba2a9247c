"""Optuna's private names behind storage's adapter (checked against Optuna 4.x and 5.0): this fails loudly,
naming the Optuna version, the day one of them changes."""

from __future__ import annotations

import warnings

import optuna
import pytest
from optuna.trial import TrialState

from storage import set_study_system_attrs, trial_id, trial_of, trials_with_heartbeat

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


def test_trials_with_heartbeat_names_those_optunas_stale_check_can_see(tmp_path):
    with warnings.catch_warnings():
        # heartbeats are experimental and "supposed to be used with optimize": the runner uses them with ask
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)
        storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'h.db'}", heartbeat_interval=60)
        study = optuna.create_study(storage=storage)
        beating, silent = study.ask(), study.ask()
    storage.record_heartbeat(trial_id(beating))
    study_id = storage.get_study_id_from_name(study.study_name)
    assert trials_with_heartbeat(storage, study_id) == {trial_id(beating)}, VERSION
    assert storage._get_stale_trial_ids(study_id) == [], VERSION  # neither is stale to Optuna, the silent one never
    assert trial_id(silent) not in trials_with_heartbeat(storage, study_id)


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
