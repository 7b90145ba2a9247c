"""Optuna's private names behind storage's adapter (checked against Optuna 4.x and 5.0): this fails loudly,
naming the Optuna version, the day one of them changes."""

from __future__ import annotations

import warnings

import optuna
from optuna.trial import TrialState

from storage import trial_id, trial_of, trials_with_heartbeat

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
