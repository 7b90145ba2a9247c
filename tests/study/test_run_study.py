"""``study.run_study``: a study config run from Python as ``snn-study run`` runs it, its Optuna studies returned."""

from __future__ import annotations

import optuna
import pytest
import yaml
from support import study_yaml

from objectives import ConfigError
from study import run_study


def test_a_config_file_runs_to_its_grid_and_returns_its_one_study(tmp_path):
    path = study_yaml(tmp_path, pruner={"name": "none"})
    studies = run_study(path, {"search.neuron": ["leaky"], "search.backprop": ["bptt"]})
    assert [s.study_name for s in studies] == ["grid8"]
    trials = studies[0].trials
    assert len(trials) == 2 and {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}
    assert {t.params["surrogate"] for t in trials} == {"fast_sigmoid", "atan"}
    # the same call again resumes the study: it is complete, nothing more runs
    assert len(run_study(path, {"search.neuron": ["leaky"], "search.backprop": ["bptt"]})[0].trials) == 2


def test_a_per_combination_config_returns_one_study_per_combination_in_the_order_it_runs_them(tmp_path):
    config = yaml.safe_load(study_yaml(tmp_path).read_text())
    config["study"].update(sampler="random", n_trials=1, per_combination=True, name="pc")
    config["search"] = {"neuron": ["leaky"], "surrogate": ["atan", "fast_sigmoid"], "backprop": ["bptt"],
                        "lr": {"low": 0.002, "high": 0.05, "log": True}}
    studies = run_study(config)
    assert [s.study_name for s in studies] == ["pc::leaky/atan/bptt", "pc::leaky/fast_sigmoid/bptt"]
    assert [len(s.trials) for s in studies] == [1, 1]


def test_a_preset_is_run_by_its_name(tmp_path):
    overrides = {"study.storage": f"sqlite:///{tmp_path / 'q.db'}", "dataset.name": "synthetic",
                 "dataset.val_size": 200, "dataset.train_subset": 300, "dataset.test_subset": 100,
                 "model.channels": [4, 8], "model.num_steps": 5, "training.epochs": 1, "training.device": "cpu",
                 "search.neuron": ["leaky"], "search.surrogate": ["atan"], "search.backprop": ["bptt"]}
    [study] = run_study("quick", overrides)
    assert study.study_name == "quick" and [t.state.name for t in study.trials] == ["COMPLETE"]


@pytest.mark.parametrize("config, message", [
    ("no-such-preset", "config: got 'no-such-preset'; cannot read it (No such file or directory); give a study "
                       "config's path or a preset: quick,"),
    ({"study": {"sampler": "cmaes"}}, "study.sampler: got 'cmaes'"),
])
def test_bad_input_raises_one_config_error_and_writes_nothing(tmp_path, monkeypatch, config, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as raised:
        run_study(config)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert list(tmp_path.iterdir()) == []
