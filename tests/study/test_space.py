"""The study config's search section: what each entry becomes, and where it is sampled at all."""

from __future__ import annotations

import math

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from support import REPO, study_yaml

from objectives import ConfigError, TrialConfig
from study._config import PRESETS, StudyConfig, load_preset
from study._space import SearchSpace

BASE = TrialConfig.from_dict({})
#: snntorch's surrogate scales: each surrogate's own shape parameters are searched
RAW = TrialConfig.from_dict({"model": {"surrogate_scale": "raw"}})


def sample(search, n=60, base=BASE):
    space = SearchSpace(base, search)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    out = []
    for _ in range(n):
        trial = study.ask()
        cfg = space.suggest(trial)
        out.append((trial, cfg))
        study.tell(trial, 0.0)
    return out


@pytest.mark.parametrize(
    "entry, name, distribution",
    [
        ({"neuron": ["leaky", "alpha"]}, "neuron", CategoricalDistribution(["leaky", "alpha"])),
        ({"lr": {"low": 0.001, "high": 0.1, "log": True}}, "lr", FloatDistribution(0.001, 0.1, log=True)),
        ({"beta": {"low": 0.4, "high": 0.9, "step": 0.1}}, "beta", FloatDistribution(0.4, 0.9, step=0.1)),
        ({"num_steps": {"low": 10, "high": 30}}, "num_steps", IntDistribution(10, 30)),
        ({"training.batch_size": {"low": 32, "high": 256, "log": True}}, "training.batch_size",
         IntDistribution(32, 256, log=True)),
        ({"threshold": {"low": 0.25, "high": 2, "log": True}}, "threshold", FloatDistribution(0.25, 2, log=True)),
        ({"surrogate_width": {"low": 0.1, "high": 1}}, "surrogate_width", FloatDistribution(0.1, 1)),
        ({"step_every": ["batch", "window"]}, "step_every", CategoricalDistribution(["batch", "window"])),
    ],
)
def test_each_entry_becomes_its_distribution(entry, name, distribution):
    trial, _ = sample(entry, n=1)[0]
    assert trial.distributions[name] == distribution


def test_a_raw_scale_searches_each_surrogate_s_own_shape_parameter():
    trial, _ = sample({"slope": {"low": 1, "high": 100, "log": True}}, n=1, base=RAW)[0]
    assert trial.distributions["fast_sigmoid.slope"] == FloatDistribution(1, 100, log=True)


@pytest.mark.parametrize("neuron", ["alpha", "leaky", "synaptic", "lapicque"])
def test_the_threshold_is_searched_for_every_neuron(neuron):
    for trial, cfg in sample({"neuron": [neuron], "threshold": {"low": 0.25, "high": 2.0}}, n=20):
        assert cfg.model.threshold == trial.params["threshold"] and 0.25 <= cfg.model.threshold <= 2.0
    assert len({cfg.model.threshold for _, cfg in sample({"neuron": [neuron], "threshold": {"low": 0.25,
                                                                                             "high": 2.0}})}) > 1


def test_a_scalar_is_fixed_and_not_sampled():
    trial, cfg = sample({"lr": 0.003, "neuron": ["synaptic"]}, n=1)[0]
    assert "lr" not in trial.params and cfg.training.lr == 0.003 and cfg.model.neuron == "synaptic"


def test_the_tbptt_window_is_sampled_only_for_tbptt():
    for trial, cfg in sample({"backprop": ["bptt", "tbptt", "rtrl"], "tbptt_window": {"low": 2, "high": 8}}):
        assert ("tbptt_window" in trial.params) == (cfg.training.backprop == "tbptt")
        if cfg.training.backprop == "tbptt":
            assert cfg.training.tbptt_window == trial.params["tbptt_window"]


def test_alpha_is_sampled_only_for_alpha_and_synaptic_and_above_beta_for_alpha():
    seen = set()
    for trial, cfg in sample({"neuron": ["alpha", "leaky", "synaptic", "lapicque"], "beta": {"low": 0.3, "high": 0.9},
                              "alpha": {"low": 0.5, "high": 0.99}}, n=120):
        n = cfg.model.neuron
        seen.add(n)
        alpha_names = [k for k in trial.params if k.endswith("alpha") and k != "neuron"]
        assert bool(alpha_names) == (n in ("alpha", "synaptic"))
        if n == "alpha":
            assert cfg.model.alpha > cfg.model.beta
        if n == "lapicque":
            assert cfg.model.beta > 1 / math.e
    assert seen == {"alpha", "leaky", "synaptic", "lapicque"}


def test_beta_stays_below_the_run_configs_alpha_for_the_alpha_neuron_when_alpha_is_not_searched():
    # the default alpha (0.7) is inside the beta range: the alpha neuron draws beta below it, the others the whole range
    drawn = {"alpha": [], "leaky": []}
    for trial, cfg in sample({"neuron": ["alpha", "leaky"], "beta": {"low": 0.3, "high": 0.9}}, n=80):
        drawn[cfg.model.neuron].append(cfg.model.beta)
        assert cfg.model.alpha == 0.7 and ("alpha.beta" in trial.params) == (cfg.model.neuron == "alpha")
    assert drawn["alpha"] and max(drawn["alpha"]) < 0.7 and max(drawn["leaky"]) > 0.7


def test_each_surrogate_gets_its_own_shape_parameter_under_its_own_name():
    for trial, cfg in sample({"surrogate": ["fast_sigmoid", "atan", "straight_through_estimator", "sigmoid"],
                              "slope": {"low": 1, "high": 50}, "surrogate_args.alpha": {"low": 0.5, "high": 4}},
                             base=RAW):
        s = cfg.model.surrogate
        names = {k for k in trial.params if "." in k}
        expected = {"fast_sigmoid": {"fast_sigmoid.slope"}, "sigmoid": {"sigmoid.slope"}, "atan": {"atan.alpha"},
                    "straight_through_estimator": set()}[s]
        assert names == expected
        for name in names:
            assert cfg.model.surrogate_args[name.split(".")[1]] == trial.params[name]


def test_one_surrogate_width_is_searched_for_every_surrogate_with_a_width_under_one_name():
    surrogates = ["fast_sigmoid", "triangular", "stochastic_spike_operator", "sparse_fast_sigmoid", "escape_noise"]
    seen = set()
    for trial, cfg in sample({"surrogate": surrogates, "surrogate_width": {"low": 0.1, "high": 1.0, "log": True},
                              "B": 1.5}):
        s = cfg.model.surrogate
        seen.add(s)
        has_width = s != "stochastic_spike_operator"  # no width: nothing to draw
        assert ("surrogate_width" in trial.params) == has_width
        assert [k for k in trial.params if k not in ("surrogate", "surrogate_width")] == []
        if has_width:
            assert cfg.model.surrogate_width == trial.params["surrogate_width"]
        # under the normalized scale the width sets the shape; only sparse_fast_sigmoid's cut B stays a parameter
        assert cfg.model.surrogate_args == ({"B": 1.5} if s == "sparse_fast_sigmoid" else {})
    assert seen == set(surrogates)


@pytest.mark.parametrize(
    "search, base, field",
    [
        ({"surrogate_width": {"low": 0.1, "high": 1.0}}, RAW, "search.surrogate_width"),  # only normalized
        ({"surrogate": ["stochastic_spike_operator"], "surrogate_width": {"low": 0.1, "high": 1.0}}, BASE,
         "search.surrogate_width"),  # no width to search
        ({"surrogate": ["sparse_fast_sigmoid"], "surrogate_width": {"low": 0.1, "high": 3.0}}, BASE,
         "search.surrogate_width -> model.surrogate_args.B"),  # wider than the sparse cut B = 2
        ({"slope": {"low": 1, "high": 50}}, BASE, "search.slope"),  # the width sets the slope under normalized
    ],
)
def test_a_width_search_that_cannot_apply_is_refused(search, base, field):
    with pytest.raises(ConfigError) as err:
        SearchSpace(base, search)
    assert err.value.field == field, str(err.value)


def test_the_decays_stay_below_one_under_the_matched_gain():
    for _, cfg in sample({"neuron": ["leaky", "synaptic"], "beta": {"low": 0.9, "high": 1.0},
                          "alpha": {"low": 0.9, "high": 1.0}}, n=40):
        assert cfg.model.beta < 1 and cfg.model.alpha < 1


def test_the_alpha_neuron_never_draws_a_window_below_its_delay_nor_rtrl():
    search = {"neuron": ["alpha", "leaky"], "backprop": ["bptt", "tbptt", "rtrl"], "tbptt_window": {"low": 1,
                                                                                                   "high": 8}}
    seen = set()
    for trial, cfg in sample(search, n=200):
        n, b = cfg.model.neuron, cfg.training.backprop
        seen.add((n, b))
        if n == "alpha":
            assert b != "rtrl" and trial.distributions["alpha.backprop"] == CategoricalDistribution(["bptt", "tbptt"])
            if b == "tbptt":
                assert cfg.training.tbptt_window >= 4  # 3 spiking layers: a step each, and the output's
                assert trial.distributions["alpha.tbptt_window"] == IntDistribution(4, 8)
        else:
            assert trial.distributions["backprop"] == CategoricalDistribution(["bptt", "tbptt", "rtrl"])
            if b == "tbptt":
                assert trial.distributions["tbptt_window"] == IntDistribution(1, 8)
    assert seen == {("alpha", "bptt"), ("alpha", "tbptt"), ("leaky", "bptt"), ("leaky", "tbptt"), ("leaky", "rtrl")}
    # the same whichever key comes first: rtrl narrows the neuron
    for trial, cfg in sample({"backprop": ["rtrl", "bptt"], "neuron": ["alpha", "leaky"]}, n=40):
        if cfg.training.backprop == "rtrl":
            assert cfg.model.neuron == "leaky" and "rtrl.neuron" in trial.params


def test_the_grid_leaves_out_impossible_cells_and_says_which_and_why():
    space = SearchSpace(BASE, {"neuron": ["alpha", "leaky"], "surrogate": ["atan", "triangular"],
                               "backprop": ["bptt", "rtrl"]})
    grid = space.grid()
    assert len(grid) == 8 - 2
    assert {"neuron": "alpha", "surrogate": "atan", "alpha.backprop": "bptt"} in grid
    assert {"neuron": "leaky", "surrogate": "atan", "backprop": "rtrl"} in grid
    assert not any(cell.get("alpha.backprop") == "rtrl" for cell in grid)
    ((which, why),) = space.excluded()
    assert which == "neuron=alpha x backprop=rtrl" and why.startswith("training.backprop: the alpha neuron answers")
    # what the grid holds is what a trial draws: every cell's names are those suggest gives it
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for cell in grid:
        study.enqueue_trial(cell)
        trial = study.ask()
        space.suggest(trial)
        assert trial.params == cell


def test_a_search_whose_every_combination_is_impossible_is_refused():
    with pytest.raises(ConfigError) as err:
        SearchSpace(BASE, {"neuron": ["alpha"], "backprop": ["rtrl"]})
    assert err.value.field == "search" and "every combination of the search is impossible" in str(err.value)
    with pytest.raises(ConfigError):  # no tbptt window the range gives reaches the delay
        SearchSpace(BASE, {"neuron": ["alpha"], "backprop": ["tbptt"], "tbptt_window": {"low": 1, "high": 3}})


def test_the_grid_is_every_combination_of_the_categorical_lists():
    space = SearchSpace(BASE, {"neuron": ["leaky", "alpha"], "surrogate": ["atan", "sigmoid", "triangular"],
                               "lr": 0.01})
    grid = space.grid()
    assert len(grid) == 6 and len({tuple(sorted(g.items())) for g in grid}) == 6


BAD = [
    ({"search": {"neuron": ["leaky", "izhikevich"]}}, "search.neuron -> model.neuron"),
    ({"search": {"nuron": ["leaky"]}}, "search.nuron"),
    ({"search": {"lr": {"low": 0.1, "high": 0.01}}}, "search.lr"),
    ({"search": {"lr": {"low": 0, "high": 0.1, "log": True}}}, "search.lr.low"),
    ({"search": {"lr": {"low": 0.001}}}, "search.lr"),
    ({"search": {"lr": {"low": 0.001, "high": 0.01, "scale": 2}}}, "search.lr.scale"),
    ({"search": {"backprop": ["tbptt"], "tbptt_window": {"low": 2, "high": 40}}}, "search.tbptt_window"),
    ({"search": {"neuron": ["alpha"], "alpha": {"low": 0.1, "high": 0.4}}}, "search.alpha"),
    ({"search": {"surrogate": ["atan"], "slope": {"low": 1, "high": 2}}}, "search.slope"),
    ({"search": {"neuron": []}}, "search.neuron"),
    ({"search": {"root": ["a", "b"]}}, "search.root"),
    ({"study": {"sampler": "cmaes"}}, "study.sampler"),
    ({"study": {"pruner": "asha"}}, "study.pruner.name"),
    ({"study": {"pruner": {"name": "median", "warmup": 3}}}, "study.pruner.warmup"),
    ({"study": {"workers": 0}}, "study.workers"),
    ({"study": {"array_size": 0}}, "study.array_size"),
    ({"study": {"array_size": 65}}, "study.array_size"),
    ({"study": {"n_trials": 0, "sampler": "tpe"}}, "study.n_trials"),
    ({"study": {"sampler": "tpe"}}, "study.n_trials"),
    ({"study": {"devices": ["tpu:0"]}, "search": {"neuron": ["leaky"]}}, "study.devices"),
    ({"study": {"colour": "red"}}, "study.colour"),
    ({"trainig": {}}, "trainig"),
    # issue 11, 14: what a library would refuse later, refused when the config is read
    ({"study": {"seed": -1}}, "study.seed"),
    ({"study": {"seed": 2**32 - 1}}, "study.seed"),
    ({"study": {"name": "x" * 500}}, "study.name"),
    ({"study": {"name": "tab\there"}}, "study.name"),
    ({"study": {"heartbeat_interval": 10**6, "grace_period": 10**7}}, "study.heartbeat_interval"),
    ({"study": {"devices": ["cuda:x"]}}, "study.devices"),
    ({"study": {"pruner": {"name": "hyperband", "min_resource": 0}}}, "study.pruner.min_resource"),
    ({"study": {"pruner": {"name": "percentile", "percentile": float("nan")}}}, "study.pruner.percentile"),
    ({"search": {"lr": {"low": float("nan"), "high": 0.1}}}, "search.lr.low"),
    ({"search": {"lr": {"low": 0.01, "high": float("inf")}}}, "search.lr.high"),
    ({"search": {"lr": {"low": 0.01, "high": 0.1, "step": True}}}, "search.lr.step"),
    ({"search": {"epochs": {"low": 1, "high": 4, "step": 1.5}}}, "search.epochs.step"),
    ({"search": {"slope": float("inf")}}, "search.slope"),
    ({"search": {"kernel_size": {"low": 3, "high": 15}}}, "search.kernel_size -> model.channels"),
    ({"model": {"threshold": float("nan")}}, "model.threshold"),
]


@pytest.mark.parametrize("data, field", BAD, ids=[b[1] for b in BAD])
def test_a_bad_study_config_names_the_field(data, field):
    data = {"study": {"sampler": "grid", **data.get("study", {})}, **{k: v for k, v in data.items() if k != "study"}}
    with pytest.raises(ConfigError) as err:
        StudyConfig.from_dict(data)
    assert err.value.field == field, str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_is_a_valid_study(name):
    cfg = StudyConfig.from_dict(load_preset(name))
    assert cfg.target(cfg.search) >= 1


def test_the_readme_report_demo_is_the_tests_tiny_grid(tmp_path):
    """docs/report-demo.yaml (README: the study behind docs/report.png) stays :func:`support.study_yaml`'s
    8-cell grid on generated data, so the README's command runs in seconds."""
    demo = yaml.safe_load((REPO / "docs" / "report-demo.yaml").read_text())
    tiny = yaml.safe_load(study_yaml(tmp_path).read_text())
    assert {k: demo[k] for k in ("dataset", "model", "training", "search")} == \
        {k: tiny[k] for k in ("dataset", "model", "training", "search")}
    cfg = StudyConfig.from_dict(demo)
    assert cfg.study.name == "report-demo" and cfg.target(cfg.search) == 8


def test_the_grid_preset_covers_every_possible_combination():
    # 4 neurons x 10 surrogates x 3 backprop methods, less the alpha neuron with rtrl (no gradient: 10 cells)
    cfg = StudyConfig.from_dict(load_preset("mnist-grid"))
    assert cfg.study.n_trials == 110 and len(cfg.search.combinations()) == 110
    assert [which for which, _ in cfg.search.excluded()] == ["neuron=alpha x backprop=rtrl"]


def test_per_combination_makes_one_study_per_neuron_surrogate_backprop():
    cfg = StudyConfig.from_dict({
        "study": {"name": "s", "sampler": "random", "n_trials": 3, "per_combination": True},
        "search": {"neuron": ["leaky", "alpha"], "surrogate": ["atan"], "backprop": ["bptt", "rtrl"],
                   "lr": {"low": 0.001, "high": 0.01}},
    })
    names = [n for n, _ in cfg.studies()]
    # alpha with rtrl is impossible (its first layer gets no gradient): no study for it
    assert names == ["s::leaky/atan/bptt", "s::leaky/atan/rtrl", "s::alpha/atan/bptt"]
    _, space = cfg.studies()[2]
    trial, cfg2 = sample({}, n=1, base=space.base)[0]
    assert (cfg2.model.neuron, cfg2.training.backprop) == ("alpha", "bptt")
    assert [r.key for r in space.ranges] == ["lr"] and not space.categorical


def test_a_searched_tbptt_window_that_fits_the_time_steps_is_accepted_and_sampled_in_its_range():
    """The window's range is what a trial uses, not the base's window (5, more than these 3 steps) (issue 11, 15)."""
    base = TrialConfig.from_dict({"model": {"num_steps": 3}})
    search = {"backprop": ["tbptt"], "tbptt_window": {"low": 1, "high": 3}}
    cfg = StudyConfig.from_dict({"study": {"sampler": "grid"}, "model": {"num_steps": 3}, "search": search})
    assert cfg.target(cfg.search) == 1
    windows = {c.training.tbptt_window for _, c in sample(search, n=40, base=base)}
    assert windows == {1, 2, 3}


def test_a_searched_window_is_still_checked_against_what_needs_a_longer_one():
    # mse_count needs windows of two steps or more; a trial could draw a window of one
    with pytest.raises(ConfigError, match="training.loss: got 'mse_count'; needs windows of >= 2"):
        StudyConfig.from_dict({"study": {"sampler": "grid"}, "model": {"num_steps": 3},
                               "training": {"loss": "mse_count"},
                               "search": {"backprop": ["tbptt"], "tbptt_window": {"low": 1, "high": 3}}})


def test_the_grid_is_counted_without_being_listed_and_listed_only_for_the_grid_sampler(monkeypatch):
    """8 keys of 10 values: 10**8 combinations. A TPE study never lists them; a grid study of them is refused
    (issue 11, 8)."""
    search = {"lr": [0.001 * (i + 1) for i in range(10)], "beta": [0.05 * (i + 1) for i in range(10)],
              "threshold": list(range(1, 11)), "seed": list(range(10)), "batch_size": list(range(1, 11)),
              "epochs": list(range(1, 11)), "val_size": list(range(10, 110, 10)), "test_subset": list(range(1, 11))}
    monkeypatch.setattr(SearchSpace, "grid", lambda self: pytest.fail("the grid was listed"))
    cfg = StudyConfig.from_dict({"study": {"sampler": "tpe", "n_trials": 3}, "search": search})
    assert cfg.search.grid_size() == 10**8 and cfg.target(cfg.search) == 3
    with pytest.raises(ConfigError, match=r"search: got '100000000 combinations'; the grid sampler queues one trial"):
        StudyConfig.from_dict({"study": {"sampler": "grid"}, "search": search})
