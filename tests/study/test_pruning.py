"""Pruning inside a trial: every epoch is reported, a trial behind the others stops early."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from objectives import Objective, TrainingDiverged, TrialConfig
from study._pruners import PRUNERS, PrunerConfig, make_pruner
from study._samplers import SAMPLERS, make_sampler
from study._space import SearchSpace


def test_a_trial_reporting_a_bad_value_at_its_first_epochs_is_pruned(tiny):
    tiny["training"]["epochs"] = 4
    good = TrialConfig.from_dict(tiny)
    bad = good.replace(**{"training.lr": 1e-12})  # learns nothing: stuck near chance from epoch 1
    plan = [good, good, bad]
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0))
    study.optimize(Objective(lambda trial: plan[trial.number]), n_trials=3, catch=(TrainingDiverged,))
    first, second, third = study.trials
    assert first.state == second.state == TrialState.COMPLETE
    assert list(first.intermediate_values) == [1, 2, 3, 4]  # one report per epoch
    # the good trials are still near chance after one epoch of the tiny net; by the second they are not
    assert third.state == TrialState.PRUNED and third.user_attrs["pruned_at"] <= 2
    assert len(third.intermediate_values) == third.user_attrs["pruned_at"]


def test_a_trial_is_not_pruned_at_its_last_epoch(tiny):
    tiny["training"]["epochs"] = 1
    good = TrialConfig.from_dict(tiny)
    bad = good.replace(**{"training.lr": 1e-12})
    plan = [good, good, bad]
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0))
    study.optimize(Objective(lambda trial: plan[trial.number]), n_trials=3)
    assert study.trials[2].state == TrialState.COMPLETE and "test_acc" in study.trials[2].user_attrs


def test_every_pruner_builds_and_patience_wraps_it():
    for name in PRUNERS:
        assert isinstance(make_pruner(PrunerConfig.from_value(name), 10), optuna.pruners.BasePruner)
    patient = make_pruner(PrunerConfig.from_value({"name": "median", "patience": 3}), 10)
    assert isinstance(patient, optuna.pruners.PatientPruner)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_sampler_proposes_configs_within_the_space_and_repeats_them_for_the_same_seed(tiny, name):
    search = {"neuron": ["leaky", "synaptic"], "lr": {"low": 0.001, "high": 0.1, "log": True}}
    space = SearchSpace(TrialConfig.from_dict(tiny), search)

    def proposals(seed: int, worker: int = 0) -> list[tuple[str, float]]:
        study = optuna.create_study(direction="maximize", sampler=make_sampler(name, seed=seed, worker=worker))
        out = []
        for _ in range(6):
            trial = study.ask()
            cfg = space.suggest(trial)
            assert (cfg.model.neuron, cfg.training.lr) == (trial.params["neuron"], trial.params["lr"])
            study.tell(trial, cfg.training.lr)
            out.append((cfg.model.neuron, cfg.training.lr))
        return out

    first = proposals(seed=0)
    assert all(neuron in ("leaky", "synaptic") and 0.001 <= lr <= 0.1 for neuron, lr in first)
    assert len({lr for _, lr in first}) == len(first)  # a continuous range: no value twice
    assert proposals(seed=0) == first  # seeded: a study is reproducible
    assert proposals(seed=0, worker=1) != first  # parallel workers do not propose twins


def _run(study: optuna.Study, values: list[float]) -> int | None:
    """Report ``values`` epoch by epoch (from 1) as one trial; the epoch it is pruned at, or None if it completes."""
    trial = study.ask()
    for epoch, value in enumerate(values, start=1):
        trial.report(value, epoch)
        if trial.should_prune():
            study.tell(trial, state=TrialState.PRUNED)
            return epoch
    study.tell(trial, max(values))
    return None


def _study(**pruner) -> optuna.Study:
    study = optuna.create_study(direction="maximize", pruner=make_pruner(PrunerConfig.from_value(pruner), 6))
    _run(study, [0.5, 0.7, 0.8, 0.9, 0.9, 0.9])  # the one startup trial every later trial is compared with
    return study


def test_n_warmup_steps_is_the_first_epoch_a_trial_may_be_pruned_at():
    behind = [0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    assert _run(_study(name="median", n_startup_trials=1, n_warmup_steps=0), behind) == 1
    assert _run(_study(name="median", n_startup_trials=1, n_warmup_steps=1), behind) == 1  # epochs count from 1
    assert _run(_study(name="median", n_startup_trials=1, n_warmup_steps=2), behind) == 2
    assert _run(_study(name="median", n_startup_trials=1, n_warmup_steps=2), [0.4, 0.8, 0.9, 0.9, 0.9, 0.9]) is None


def test_patience_prunes_a_trial_behind_that_got_worse_but_never_one_that_stays_level():
    def patient():
        return _study(name="median", n_startup_trials=1, n_warmup_steps=0, patience=1)

    assert _run(patient(), [0.3, 0.2, 0.2, 0.2, 0.2, 0.2]) == 3  # epochs 2-3 both below epoch 1's 0.3
    assert _run(patient(), [0.1, 0.1, 0.1, 0.1, 0.1, 0.1]) is None  # at chance the whole time, never below itself
    assert _run(patient(), [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]) is None  # behind, but improving every epoch


def test_percentile_keeps_the_top_percent_of_the_finished_trials_at_each_epoch():
    def finished_four(percentile):
        study = optuna.create_study(direction="maximize", pruner=make_pruner(PrunerConfig.from_value(
            {"name": "percentile", "percentile": percentile, "n_startup_trials": 4, "n_warmup_steps": 0}), 2))
        for first in (0.1, 0.2, 0.3, 0.4):  # at epoch 1: 25th 0.175, median 0.25, 75th percentile 0.325
            _run(study, [first, 0.9])
        return study

    assert _run(finished_four(25.0), [0.3, 0.9]) == 1  # not in the top quarter
    assert _run(finished_four(25.0), [0.35, 0.9]) is None
    assert _run(finished_four(50.0), [0.3, 0.9]) is None  # above the median: 50 is the median pruner
    assert _run(finished_four(50.0), [0.2, 0.9]) == 1
    assert _run(finished_four(75.0), [0.2, 0.9]) is None


def test_the_quick_preset_judges_no_neuron_on_its_first_epoch():
    from study._config import StudyConfig, load_preset

    cfg = StudyConfig.from_dict(load_preset("quick"))
    grid = cfg.search.grid()
    assert len(grid) == 8 and not cfg.search.excluded()  # no cell that fails by construction
    # consecutive cells alternate neurons: the startup trials and every median hold both
    assert all(a["neuron"] != b["neuron"] for a, b in zip(grid, grid[1:]))
    pruner = make_pruner(cfg.study.pruner, cfg.search.base.training.epochs)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for _ in range(4):  # finished trials far ahead at every epoch
        study.add_trial(optuna.trial.create_trial(value=0.9, intermediate_values={1: 0.9, 2: 0.9, 3: 0.9}))
    behind = study.ask()
    behind.report(0.1, 1)
    assert not behind.should_prune()  # epoch 1: never
    behind.report(0.1, 2)
    assert behind.should_prune()  # from epoch 2 on, behind the median
