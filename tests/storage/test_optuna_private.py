"""Optuna's private names behind storage's adapter (checked against Optuna 4.x and 5.0): this fails loudly,
naming the Optuna version, the day one of them changes."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from storage import trial_id, trial_of

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
