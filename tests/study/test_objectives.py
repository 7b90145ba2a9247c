"""Studies of several objectives: ``study.objectives`` checked against its registry, every sampler running them,
the objective's values from the validation set, no pruning (patience alone), and a study resumed only with its own
objectives."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from support import TINY, combos, study_yaml

from objectives import ConfigError, CostMetrics, Objective, TrialConfig, TrialRecord
from storage import open_storage
from study import StudyConfig
from study._objectives import OBJECTIVE_METRICS, check_study, directions, prunes, score, short_name
from study._runner import _create_or_load, _Reporter, prepare, run_trials
from study._samplers import SAMPLERS, make_sampler

optuna.logging.set_verbosity(optuna.logging.WARNING)
COSTS = [n for n in OBJECTIVE_METRICS if n != "val_acc"]


def config(tmp_path, objectives=None, **study) -> StudyConfig:
    settings = {"name": "mo", "sampler": "random", "n_trials": 2, "storage": f"sqlite:///{tmp_path / 's.db'}",
                "pruner": {"name": "median", "n_startup_trials": 0, "n_warmup_steps": 0}, **study}
    if objectives is not None:
        settings["objectives"] = objectives
    return StudyConfig.from_dict({"study": settings, **TINY, "search": {"neuron": ["leaky"]}})


@pytest.mark.parametrize("value, expected", [
    (None, ("val_acc",)),
    (["val_acc"], ("val_acc",)),
    ("val_acc", ("val_acc",)),
    (["val_acc", "synops"], ("val_acc", "synops")),
    (["val_acc", "energy_proxy_uj", "decision_step"], ("val_acc", "energy_proxy_uj", "decision_step")),
])
def test_objectives_default_to_validation_accuracy_and_take_cost_metrics_beside_it(tmp_path, value, expected):
    assert config(tmp_path, value).study.objectives == expected


@pytest.mark.parametrize("value, shown", [
    (["val_acc", "synapses"], "got 'synapses'; unknown metric; allowed: [val_acc] or [val_acc, then cost metrics"),
    (["synops"], "got ['synops']; val_acc first, each metric once"),
    (["synops", "val_acc"], "got ['synops', 'val_acc']; val_acc first"),
    (["val_acc", "synops", "synops"], "each metric once"),
    ([], "got []; expected a list"),
    ({"val_acc": 1}, "expected a list"),
    (["val_acc", 3], "expected a list"),
])
def test_a_bad_objective_is_one_line_naming_the_field_the_value_and_what_is_allowed(tmp_path, value, shown):
    with pytest.raises(ConfigError) as err:
        config(tmp_path, value)
    message = str(err.value)
    assert message.startswith("study.objectives") and shown in message and "\n" not in message
    assert all(name in message for name in COSTS)


def test_each_cost_metric_is_a_cost_metrics_field_and_has_a_direction():
    names = set(CostMetrics.__dataclass_fields__)
    assert set(COSTS) <= names
    assert all(m.direction in ("maximize", "minimize") for m in OBJECTIVE_METRICS.values())
    assert directions(["val_acc", "synops", "activation_sparsity"]) == ["maximize", "minimize", "maximize"]


def test_the_score_reads_the_validation_costs_of_the_best_epoch_never_the_test_costs():
    result = SimpleNamespace(val_acc=0.9, val_costs=SimpleNamespace(synops=2e6, decision_step=7),
                             costs=SimpleNamespace(synops=1.0, decision_step=1))
    assert score(["val_acc"])(result) == 0.9
    assert score(["val_acc", "synops", "decision_step"])(result) == (0.9, 2e6, 7.0)


def test_a_trade_off_is_named_by_its_values():
    assert short_name(["val_acc", "synops", "energy_proxy_uj", "decision_step"], [0.95123, 2.345e6, 12.34, 7]) == [
        "val0.9512", "synops2.35M", "energy12.3uJ", "step7"]


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_sampler_runs_a_study_of_two_objectives(name):
    study = optuna.create_study(directions=directions(["val_acc", "synops"]), sampler=make_sampler(name, seed=0))
    for _ in range(8):
        trial = study.ask()
        x = trial.suggest_float("lr", 0.001, 0.1, log=True)
        trial.suggest_categorical("neuron", ["leaky", "synaptic"])
        study.tell(trial, (x, x**2 + trial.number))
    assert len(study.trials) == 8 and study.best_trials


def test_one_objective_prunes_several_do_not(tmp_path):
    assert prunes(["val_acc"]) and not prunes(["val_acc", "synops"])
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    one, two = config(tmp_path), config(tmp_path, ["val_acc", "synops"], name="mo2")
    single = _create_or_load(one, "mo", one.search, storage)
    several = _create_or_load(two, "mo2", two.search, storage)
    assert isinstance(single.pruner, optuna.pruners.MedianPruner)
    assert isinstance(several.pruner, optuna.pruners.NopPruner)
    assert [d.name for d in several.directions] == ["MAXIMIZE", "MINIMIZE"]


def test_a_trial_of_two_objectives_is_never_pruned_returns_both_values_and_stops_by_patience(tiny):
    tiny["training"].update(epochs=4, early_stopping_patience=1)
    good = TrialConfig.from_dict(tiny)
    stuck = good.replace(**{"training.lr": 1e-12})  # learns nothing: level from epoch 1, so patience ends it
    plan = [good, good, stuck]
    epochs: dict[int, list] = {0: [], 1: [], 2: []}
    study = optuna.create_study(directions=directions(["val_acc", "synops"]),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=0, n_warmup_steps=0))
    study.optimize(Objective(lambda trial: plan[trial.number], on_epoch=lambda t, c, m: epochs[t.number].append(m),
                             score=score(["val_acc", "synops"])), n_trials=3)
    assert all(t.state == TrialState.COMPLETE and t.intermediate_values == {} for t in study.trials)
    records = [TrialRecord.from_frozen_trial("s", t) for t in study.trials]
    third = records[2]
    # the median pruner would stop it at epoch 1 in a study of one objective (tests/study/test_pruning.py)
    assert third.pruned_at is None and third.stopped_early and third.epochs == len(epochs[2]) == 2
    for r in records:
        best = epochs[r.number][r.best_epoch - 1]
        assert r.values == (best.val_acc, best.val_costs["synops"]) and r.value == best.val_acc
        # the trial keeps its test-set costs too (the synthetic set's 300 test images, its 200 validation images)
        assert r.costs is not None and (r.costs["n_samples"], best.val_costs["n_samples"]) == (300, 200)


def test_a_study_resumes_only_with_its_own_objectives(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    prepare(config(tmp_path, ["val_acc", "synops"]), storage)
    prepare(config(tmp_path, ["val_acc", "synops"]), storage)  # the same objectives: resumed
    assert optuna.load_study(study_name="mo", storage=storage).metric_names == ["val_acc", "synops"]
    for other in (["val_acc"], ["val_acc", "energy_proxy_uj"]):
        with pytest.raises(ConfigError, match=r"^study.objectives: .*study 'mo' in the storage optimizes "
                                              r"\['val_acc', 'synops'\]; keep its objectives"):
            prepare(config(tmp_path, other), storage)


def test_a_study_without_metric_names_is_checked_by_its_directions():
    study = optuna.create_study(direction="maximize", study_name="old")
    check_study(study, ["val_acc"])
    with pytest.raises(ConfigError, match=r"study 'old' in the storage has the directions \['maximize'\]; keep"):
        check_study(study, ["val_acc", "synops"])


def test_a_grid_of_two_objectives_runs_each_queued_cell_once(tmp_path):
    cfg = StudyConfig.from_dict(yaml.safe_load(study_yaml(tmp_path, objectives=["val_acc", "synops"]).read_text()))
    storage = open_storage(cfg.study.storage, heartbeat_interval=None)
    prepare(cfg, storage)
    (name, space), = cfg.studies()
    study = _create_or_load(cfg, name, space, storage)

    def objective(trial):
        cfg = space.suggest(trial)
        return 0.5 + 0.1 * (cfg.model.neuron == "leaky"), 1e6 * (1 + (cfg.model.surrogate == "atan"))

    while run_trials(study, storage, objective, grid=True, reporter=_Reporter(0, quiet=True)):
        pass
    trials = study.get_trials()
    assert len(trials) == 8 and all(t.state == TrialState.COMPLETE and len(t.values) == 2 for t in trials)
    assert len(combos(trials)) == 8
    # leaky beats synaptic in accuracy, fast_sigmoid beats atan in cost: the leaky/fast_sigmoid cells, both backprops
    assert {(t.params["neuron"], t.params["surrogate"]) for t in study.best_trials} == {("leaky", "fast_sigmoid")}
