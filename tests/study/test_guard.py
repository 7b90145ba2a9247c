"""One config per study, no stranger's study joined, no trial left hanging: ``study._guard`` in process.

Real SQLite files; nothing trains. The command-line behaviour of the same rules (exit 2, one
line, nothing written) is in ``tests/e2e/test_study_identity.py``.
"""

from __future__ import annotations

import copy
import time
import warnings

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from support import study_yaml

from objectives import STUDY_CONFIG_ATTR, ConfigError
from storage import open_storage, trial_id
from study._config import StudyConfig
from study._guard import FINGERPRINT_ATTR, check_joinable, claimable, fail_silent_trials
from study._runner import _claim_queued, _create_or_load, prepare


@pytest.fixture
def base(tmp_path) -> dict:
    return yaml.safe_load(study_yaml(tmp_path).read_text())


def prepared(data: dict):
    cfg = StudyConfig.from_dict(data)
    storage = open_storage(cfg.study.storage, heartbeat_interval=1, grace_period=2)
    prepare(cfg, storage)
    return cfg, storage


def changed(data: dict, **changes) -> StudyConfig:
    out = copy.deepcopy(data)
    for key, value in changes.items():
        section, field = key.split(".", 1)
        out[section][field] = value
    return StudyConfig.from_dict(out)


REFUSED = [
    ({"search.surrogate": ["fast_sigmoid", "atan", "sigmoid"]}, "search.surrogate"),
    ({"search.tbptt_window": {"low": 2, "high": 4}}, "search.tbptt_window"),
    ({"search.lr": [0.01, 0.02]}, "search.lr"),
    ({"training.epochs": 5}, "training.epochs"),
    ({"training.lr": 0.02}, "training.lr"),
    ({"training.optimizer": "sgd"}, "training.optimizer"),
    ({"training.loss": "ce_count"}, "training.loss"),
    ({"training.seed": 1}, "training.seed"),
    ({"model.channels": [4, 16]}, "model.channels"),
    ({"model.beta": 0.7}, "model.beta"),
    ({"dataset.val_size": 300}, "dataset.val_size"),
    ({"dataset.name": "mnist"}, "dataset.name"),
    ({"study.sampler": "tpe", "study.n_trials": 8}, "study.sampler"),
    ({"study.pruner": "hyperband"}, "study.pruner.name"),
    ({"study.artifacts": "elsewhere"}, "study.artifacts"),
    ({"study.per_combination": True}, None),  # other study names: nothing to join, nothing refused
]


@pytest.mark.parametrize("changes, field", REFUSED, ids=[next(iter(c)) for c, _ in REFUSED])
def test_a_config_that_changes_what_the_trials_mean_cannot_join_the_study(base, changes, field):
    cfg, storage = prepared(base)
    other = changed(base, **changes)
    if field is None:
        check_joinable(other, storage)
        return
    with pytest.raises(ConfigError) as raised:
        check_joinable(other, storage)
    assert raised.value.field == field
    assert "grid8" in str(raised.value) and "--study-name" in str(raised.value)
    assert "\n" not in str(raised.value)


ALLOWED = [
    {"study.workers": 3},
    {"study.array_size": 4},  # how trials are trained together, not what they are
    {"study.devices": ["cpu"]},
    {"study.heartbeat_interval": 5, "study.grace_period": 20},
    {"study.seed": 7},
    {"dataset.root": "/elsewhere/data", "dataset.download": False},
    {"training.device": "auto"},
    {"model.surrogate_width": 0.75},  # the default, spelled out
    {"training.lr": 0.01},  # the default, spelled out
]


@pytest.mark.parametrize("changes", ALLOWED, ids=[next(iter(c)) for c in ALLOWED])
def test_what_only_says_how_or_where_a_study_runs_may_change(base, changes):
    _, storage = prepared(base)
    check_joinable(changed(base, **changes), storage)


def test_the_storage_url_may_be_spelled_differently(base, tmp_path, monkeypatch):
    _, storage = prepared(base)
    monkeypatch.chdir(tmp_path)
    check_joinable(changed(base, **{"study.storage": "sqlite:///study.db"}), storage)


def test_a_study_written_before_fingerprints_is_checked_against_its_stored_config(base):
    cfg, storage = prepared(base)
    study = optuna.load_study(study_name="grid8", storage=storage)
    assert study.user_attrs[FINGERPRINT_ATTR] and study.user_attrs[STUDY_CONFIG_ATTR]
    storage.set_study_user_attr(study._study_id, FINGERPRINT_ATTR, None)
    check_joinable(cfg, storage)
    with pytest.raises(ConfigError) as raised:
        check_joinable(changed(base, **{"training.epochs": 9}), storage)
    assert raised.value.field == "training.epochs"


def test_an_empty_study_of_the_same_name_is_adopted_and_a_foreign_one_with_trials_refused(base):
    cfg = StudyConfig.from_dict(base)
    storage = open_storage(cfg.study.storage)
    study = optuna.create_study(study_name="grid8", storage=storage, direction="maximize")
    check_joinable(cfg, storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    with pytest.raises(ConfigError, match="did not write"):
        check_joinable(cfg, storage)


def test_the_study_config_is_stored_with_the_password_hidden(base):
    base["study"]["artifacts"] = "somewhere"
    cfg, storage = prepared(base)
    from study._guard import stored_config

    secret_cfg = changed(base, **{"study.storage": "postgresql://u:hunter2@h/db"})
    assert stored_config(secret_cfg)["study"]["storage"] == "postgresql://u:***@h/db"
    assert secret_cfg.study.storage == "postgresql://u:hunter2@h/db"  # the workers still get the password


@pytest.mark.parametrize("params, ours", [
    ({"neuron": "leaky", "surrogate": "atan", "backprop": "bptt"}, True),
    ({"neuron": "alpha", "surrogate": "atan", "backprop": "bptt"}, False),  # not among the choices
    ({"neuron": "leaky", "surrogate": "atan", "backprop": "bptt", "optimizer": "sgd"}, False),  # a key it lacks
    ({"neuron": "leaky", "lr": 0.02}, True),
    ({"neuron": "leaky", "lr": 0.5}, False),  # outside the range
    ({"neuron": "leaky", "atan.alpha": 2.0}, True),  # a surrogate's own parameter
    ({"neuron": "leaky", "lr": "fast"}, False),
])
def test_a_queued_trial_is_claimed_only_by_a_config_that_can_run_it(base, params, ours):
    base["search"]["lr"] = {"low": 0.001, "high": 0.1, "log": True}
    base["search"]["surrogate_args.alpha"] = {"low": 1, "high": 3}
    base["model"]["surrogate_scale"] = "raw"  # a surrogate's own shape parameter is searched only unnormalized
    cfg = StudyConfig.from_dict(base)
    (_, space), = cfg.studies()
    assert claimable(space, params) is ours


def test_every_grid_cell_is_claimable_where_a_neuron_narrows_the_backprop_methods(base):
    base["search"].update(neuron=["alpha", "leaky"], backprop=["bptt", "rtrl"])
    cfg = StudyConfig.from_dict(base)
    (_, space), = cfg.studies()
    grid = space.grid()
    assert any("rtrl.neuron" in params for params in grid)  # alpha with rtrl is impossible: narrowed
    assert all(claimable(space, params) for params in grid)
    assert not claimable(space, {"backprop": "rtrl", "surrogate": "atan", "rtrl.neuron": "synaptic"})


def test_another_configs_queued_trial_stays_waiting(base):
    cfg, storage = prepared(base)
    (name, space), = cfg.studies()
    study = _create_or_load(cfg, name, space, storage)
    for t in study.get_trials(states=(TrialState.WAITING,)):
        storage.set_trial_state_values(trial_id(t), state=TrialState.RUNNING)  # every one of ours is taken
    study.enqueue_trial({"neuron": "alpha", "surrogate": "atan", "backprop": "bptt"})
    assert _claim_queued(study, storage, space) == []
    assert study.trials[-1].state == TrialState.WAITING


def test_a_running_trial_that_never_sent_a_heartbeat_is_failed_and_requeued_after_the_grace_period(base):
    """Defect 1, in process: Optuna's own stale check passes over a trial without a heartbeat."""
    cfg, storage = prepared(base)
    (name, space), = cfg.studies()
    study = _create_or_load(cfg, name, space, storage)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    silent, beating = waiting[0], waiting[1]
    for t in (silent, beating):
        assert storage.set_trial_state_values(trial_id(t), state=TrialState.RUNNING)
    fail_silent_trials(study, storage, grace_period=2)
    assert {t.state for t in study.get_trials() if t.number in (silent.number, beating.number)} == {TrialState.RUNNING}
    time.sleep(2.5)
    storage.record_heartbeat(trial_id(beating))  # alive: beating, however late its first beat
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    assert study.trials[silent.number].state == TrialState.RUNNING  # what Optuna alone leaves behind
    fail_silent_trials(study, storage, grace_period=2)
    trials = study.get_trials()
    assert trials[silent.number].state == TrialState.FAIL
    assert trials[beating.number].state == TrialState.RUNNING
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == silent.number]
    assert len(retried) == 1 and retried[0].state == TrialState.WAITING
    assert retried[0].system_attrs["fixed_params"] == silent.system_attrs["fixed_params"]
