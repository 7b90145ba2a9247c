"""The comparison protocol (``snn-study compare``) in process, training replaced by a fake (``support.fake_fit``).

One comparison is run once for the module: 2 neurons x 2 surrogates x BPTT, 5 tuning trials per cell, 3 seeds,
where the neuron alone moves accuracy (leaky 10 points ahead) and the surrogate does nothing. The tests read what it
left in the database: equal effort per cell, pruning within each cell only, replicates of each cell's best tuning
trial, the statistics and the report. ``tests/e2e/test_compare.py`` runs the command itself with real workers.
"""

from __future__ import annotations

import json
import math

import optuna
import optuna_dashboard
import pytest
import yaml
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from support import fake_fit

import reports
from objectives import Combination, ConfigError, TrialRecord, cell_study_name
from storage import open_storage
from study import StudyConfig, load_preset
from study._compare import compare, comparison_lines, comparison_result
from study._runner import queue_missing
from study._stages import tuned_trial

NEURONS, SURROGATES = ["leaky", "synaptic"], ["atan", "fast_sigmoid"]
TRIALS, SEEDS, EFFECT = 5, [11, 12, 13], 0.10


def config(tmp_path, **compare) -> dict:
    return {
        "study": {"name": "cmp", "storage": f"sqlite:///{tmp_path / 'study.db'}", "sampler": "tpe",
                  "pruner": {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 0}},
        "compare": {"trials_per_cell": TRIALS, "seeds": SEEDS, **compare},
        "dataset": {"name": "synthetic", "val_size": 200},
        "training": {"epochs": 4, "device": "cpu"},
        "search": {"neuron": NEURONS, "surrogate": SURROGATES, "backprop": ["bptt"],
                   "lr": {"low": 0.0001, "high": 1.0, "log": True}},
    }


def neuron_effect(cfg) -> float:
    return EFFECT if cfg.model.neuron == "leaky" else 0.0


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    """``(config, storage URL)`` of the module's comparison, run to the end."""
    tmp = tmp_path_factory.mktemp("compare")
    cfg = StudyConfig.from_dict(config(tmp))
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    assert compare(cfg, quiet=True, fit=fake_fit(neuron_effect)) == 0
    return cfg, cfg.study.storage


def cells() -> list[Combination]:
    return [Combination(n, s, "bptt") for n in NEURONS for s in SURROGATES]


def trials(url: str, combination: Combination, stage: str) -> list[TrialRecord]:
    name = cell_study_name("cmp", combination, stage)
    study = optuna.load_study(study_name=name, storage=url)
    return [TrialRecord.from_frozen_trial(name, t) for t in study.get_trials()]


# ---- the compare section ------------------------------------------------------------------------------------------


def test_the_compare_section_has_defaults_and_a_seed_count_means_fresh_seeds_after_the_tuning_seed(tmp_path):
    raw = config(tmp_path)
    raw["compare"] = None
    raw["training"]["seed"] = 7
    settings = StudyConfig.from_dict(raw).compare
    assert (settings.trials_per_cell, settings.seeds, settings.alpha, settings.metric) == (
        10, (8, 9, 10, 11, 12), 0.05, "test_acc")
    raw["compare"] = {"seeds": 3, "metric": "val_acc"}
    assert StudyConfig.from_dict(raw).compare.seeds == (8, 9, 10)
    # a comparison needs no study.n_trials: its budget is per cell
    assert "n_trials" not in raw["study"]


@pytest.mark.parametrize("field, value, words", [
    ("trials_per_cell", 0, "expected an integer >= 1"),
    ("seeds", 1, "at least 2 seeds"),
    ("seeds", [3, 3], "at least 2 different seeds"),
    ("seeds", [0, 1, 2], "must not hold the tuning seed training.seed (0)"),
    ("seeds", "five", "a count (e.g. 5) or a list of integers"),
    ("alpha", 0.7, "within (0, 0.5)"),
    ("metric", "loss", "allowed: test_acc, val_acc"),
    ("rounds", 3, "unknown field; allowed: trials_per_cell, seeds, alpha, metric"),
])
def test_a_bad_compare_field_is_a_config_error_naming_it(tmp_path, field, value, words):
    raw = config(tmp_path)
    raw["compare"] = {field: value}
    with pytest.raises(ConfigError) as error:
        StudyConfig.from_dict(raw)
    assert f"compare.{field}" in str(error.value) and words in str(error.value)


@pytest.mark.parametrize("preset, cells, trials, seeds", [("compare-quick", 8, 4, 3), ("mnist-compare", 110, 12, 5)])
def test_the_comparison_presets_are_valid_comparisons(preset, cells, trials, seeds):
    cfg = StudyConfig.from_dict(load_preset(preset))
    assert len(cfg.search.combinations()) == cells
    assert (cfg.compare.trials_per_cell, len(cfg.compare.seeds)) == (trials, seeds)


@pytest.mark.parametrize("seeds, warned", [([11, 12], True), (2, True), ([11, 12, 13], False), (5, False)])
def test_fewer_than_three_seeds_get_one_warning_line_on_stderr_and_the_comparison_still_runs(
        tmp_path, capsys, seeds, warned):
    cfg = StudyConfig.from_dict({**config(tmp_path, seeds=seeds, trials_per_cell=1),
                                 "search": {"neuron": NEURONS, "surrogate": ["atan"], "backprop": ["bptt"]}})
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    assert compare(cfg, quiet=True, fit=fake_fit(neuron_effect)) == 0
    out, err = capsys.readouterr()
    warnings = [line for line in err.splitlines() if "warning" in line]
    n = len(cfg.compare.seeds)
    assert warnings == ([f"snn-study compare: warning: stage replicate runs {n} seeds per combination "
                         "(compare.seeds): its 95 % intervals are 7.2 times as wide as from 5 seeds (the same spread), "
                         "too wide to tell most combinations apart; --set compare.seeds=5 runs more"] if warned else [])
    assert "warning" not in out
    for neuron in NEURONS:
        replicates = trials(cfg.study.storage, Combination(neuron, "atan", "bptt"), "replicate")
        assert sorted(t.config["training"]["seed"] for t in replicates) == list(cfg.compare.seeds)


# ---- equal effort -------------------------------------------------------------------------------------------------


def test_every_cell_gets_exactly_its_tuning_trials_and_its_replicates_each_tagged_with_stage_and_cell(comparison):
    _, url = comparison
    for combination in cells():
        tune, replicate = trials(url, combination, "tune"), trials(url, combination, "replicate")
        assert len(tune) == TRIALS and all(t.done for t in tune)
        assert sorted(t.config["training"]["seed"] for t in replicate) == SEEDS
        assert all(t.state == "COMPLETE" for t in replicate)  # never pruned
        for stage, records in (("tune", tune), ("replicate", replicate)):
            assert {t.stage for t in records} == {stage}
            assert {t.combination for t in records} == {combination}


def test_pruning_is_decided_within_each_cell_so_the_cell_queued_last_is_pruned_as_the_first(comparison):
    """The fake gives every cell the same curves up to the cell's own offset: with a pruner per cell the same trials
    are pruned in each, whatever the order the cells ran in (one pruner over all would prune the weaker cells)."""
    _, url = comparison
    pruned = {c: [t.number for t in trials(url, c, "tune") if t.state == "PRUNED"] for c in cells()}
    first, *_, last = cells()
    assert 0 < len(pruned[first]) < TRIALS  # the pruner did prune, and not everything
    assert all(numbers == pruned[first] for numbers in pruned.values()), pruned
    assert pruned[last] == pruned[first]


def test_each_cell_replicates_its_best_tuning_trial_by_validation_accuracy_with_only_the_seed_changed(comparison):
    _, url = comparison
    for combination in cells():
        tune = trials(url, combination, "tune")
        best = max((t for t in tune if t.state == "COMPLETE"), key=lambda t: t.value)
        for replicate in trials(url, combination, "replicate"):
            config = json.loads(json.dumps(replicate.config))
            assert config["training"].pop("seed") in SEEDS
            expected = json.loads(json.dumps(best.config))
            expected["training"].pop("seed")
            assert config == expected


def test_running_the_same_comparison_again_adds_no_trial(comparison):
    cfg, url = comparison
    before = sum(len(trials(url, c, s)) for c in cells() for s in ("tune", "replicate"))
    assert compare(cfg, quiet=True, fit=fake_fit(neuron_effect)) == 0
    assert sum(len(trials(url, c, s)) for c in cells() for s in ("tune", "replicate")) == before


# ---- the result ---------------------------------------------------------------------------------------------------


def test_the_result_ranks_the_neuron_with_the_effect_first_and_ties_the_surrogates(comparison):
    _, url = comparison
    result = comparison_result(url, "cmp")
    assert [c["n"] for c in result["cells"]] == [len(SEEDS)] * 4
    assert {c["neuron"] for c in result["cells"][:2]} == {"leaky"}
    neuron, surrogate, _ = result["factor_tests"]
    assert neuron["best"] == "leaky" and [r["group"] for r in neuron["levels"]] == ["best", "worse"]
    assert {r["group"] for r in surrogate["levels"]} <= {"best", "tied"}
    lines = comparison_lines(url, ["cmp::tune::x/y/z", "other"])
    assert lines[0] == f"comparison cmp: tune {4 * TRIALS}/{4 * TRIALS} trials done, replicate 12/12 trials done"
    assert "neuron: best leaky; tied with it: none; worse: synaptic (p_holm " in lines[2]


def test_the_report_gives_the_factor_that_alone_sets_accuracy_nearly_all_the_importance(comparison, tmp_path):
    _, url = comparison
    report = reports.export(url, "cmp", tmp_path / "report", dashboard=False)
    shares = {r["source"]: r["share"] for r in report.comparison["importance"]}
    assert shares["neuron"] > 0.95 and shares["surrogate"] < 0.02
    assert report.comparison["importance"][0]["n"] == 4 * len(SEEDS)
    bars = report.figures["main_effects"].data[0]
    assert dict(zip(bars.y, bars.x))["neuron"] == shares["neuron"]
    # Optuna's importance over the 20 tuning trials: drawn only with enough complete ones, else a note says why
    importance = report.figures["optuna_importance"]
    assert importance is not None or any("need at least 20" in n for n in report.notes)


def test_the_report_of_a_comparison_writes_its_csv_json_figures_and_the_ranking_into_the_dashboard_note(
        comparison, tmp_path):
    _, url = comparison
    out = tmp_path / "report"
    report = reports.export(url, "cmp", out)
    rows = reports.read_csv(out / "comparison.csv")
    combos = [r for r in rows if r["kind"] == "combination"]
    assert [r["rank"] for r in combos] == [1, 2, 3, 4]
    assert all(r[f"seed_{s}"] is not None for r in combos for s in SEEDS)
    assert all(r["ci_low"] < r["mean"] < r["ci_high"] for r in combos)
    levels = [r for r in rows if r["kind"] == "factor"]
    assert {(r["factor"], r["level"], r["group"]) for r in levels} >= {("neuron", "leaky", "best"),
                                                                          ("neuron", "synaptic", "worse")}
    assert all(r["p_holm"] is not None for r in levels if r["group"] == "worse")
    saved = json.loads((out / "comparison.json").read_text())
    assert saved["cells"] == json.loads(json.dumps(report.comparison["cells"]))
    for key in ("forest", "factors", "replicate_curves", "main_effects"):
        assert report.figures[key] is not None, key
    forest = report.figures["forest"]
    assert list(forest.data[1].y)[::-1] == [" / ".join(c[f] for f in ("neuron", "surrogate", "backprop"))
                                            for c in report.comparison["cells"]]
    index = (out / "index.html").read_text()
    assert 'id="ranking"' in index and "comparison.json" in index and "tied" in index
    # the replicate curves: one mean line (and one band) per cell, over the seeds
    means = [t for t in report.figures["replicate_curves"].data if t.mode == "lines+markers"]
    assert len(means) == 4 and all(len(t.x) == 4 for t in means)
    # the search figures are of the stage tune
    assert {r["trials"] for r in report.summary} == {TRIALS}
    # every study of the comparison carries the ranking in its optuna-dashboard note, and the forest plot
    assert len(report.dashboard_studies) == 8
    study = optuna.load_study(study_name=cell_study_name("cmp", cells()[-1], "replicate"), storage=url)
    note = optuna_dashboard.get_note(study)
    assert "**Comparison: test accuracy of the replicate runs" in note and "| 1 | leaky / " in note
    assert "- neuron: best leaky; tied with it: none; worse: synaptic" in note


# ---- the pieces ---------------------------------------------------------------------------------------------------


def _trial(state: TrialState, value: float | None = None, steps: dict | None = None, **attrs):
    return create_trial(state=state, value=value, params={"lr": 0.01}, intermediate_values=steps or {},
                        distributions={"lr": FloatDistribution(0.001, 0.1, log=True)}, user_attrs=attrs)


@pytest.mark.parametrize("trials, chosen", [
    ([_trial(TrialState.COMPLETE, 0.8), _trial(TrialState.COMPLETE, 0.9), _trial(TrialState.COMPLETE, 0.9)], 1),
    ([_trial(TrialState.PRUNED, steps={1: 0.3}), _trial(TrialState.PRUNED, steps={1: 0.5, 2: 0.4})], 1),
    ([_trial(TrialState.FAIL), _trial(TrialState.FAIL, failure="diverged"), _trial(TrialState.FAIL, failure="d")], 1),
    ([_trial(TrialState.FAIL)], None),
])
def test_the_tuned_trial_is_the_best_complete_else_the_best_pruned_else_the_first_failed_for_good(trials, chosen):
    study = optuna.create_study(direction="maximize")
    study.add_trials(trials)
    best = tuned_trial(study)
    assert (best.number if best is not None else None) == chosen


def test_a_budget_queue_tops_a_study_up_to_its_number_of_trials_and_a_grid_queue_each_combination_once(tmp_path):
    cfg = StudyConfig.from_dict(config(tmp_path))
    storage = open_storage(cfg.study.storage, heartbeat_interval=None)
    study = optuna.create_study(study_name="budget", storage=storage, direction="maximize")
    study.add_trial(_trial(TrialState.COMPLETE, 0.5))
    assert queue_missing(study, storage, cfg.search, [{}] * 3) == 2
    assert queue_missing(study, storage, cfg.search, [{}] * 3) == 0
    grid = optuna.create_study(study_name="grid", storage=storage, direction="maximize")
    assert queue_missing(grid, storage, cfg.search) == 4 and queue_missing(grid, storage, cfg.search) == 0
    assert math.prod(len(c.choices) for c in cfg.search.categorical) == 4


def test_a_comparison_of_a_study_that_is_no_comparison_is_a_study_error(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    optuna.create_study(study_name="plain", storage=url, direction="maximize")  # a study, not a comparison
    with pytest.raises(ConfigError, match="is not a comparison"):
        comparison_result(url, "plain")


def test_the_stage_configs_of_a_comparison_are_studies_per_cell(tmp_path):
    raw = config(tmp_path)
    cfg = StudyConfig.from_dict(yaml.safe_load(yaml.safe_dump(raw)))
    from study._stages import tune_config

    tune = tune_config(cfg)
    assert [n for n, _ in tune.studies()] == [cell_study_name("cmp", c, "tune") for c in cells()]
    assert all(tune.target(space) == TRIALS and tune.queue(space) == [{}] * TRIALS for _, space in tune.studies())
    # the worker's spec of a stage is the comparison's own config, so a worker rebuilds the same stage
    assert StudyConfig.from_dict(tune.to_dict()).compare == cfg.compare


def test_a_small_comparison_gives_each_cell_its_budget_on_every_storage_kind_and_never_pools_two_configs(
        tmp_path, storage_url):
    raw = config(tmp_path, trials_per_cell=2, seeds=[1, 2])
    raw["study"]["storage"] = storage_url
    raw["search"]["surrogate"] = ["atan"]
    cfg = StudyConfig.from_dict(raw)
    assert compare(cfg, quiet=True, fit=fake_fit(neuron_effect)) == 0
    result = comparison_result(storage_url, "cmp")
    assert result["stages"] == {"tune": {"done": 4, "trials": 4}, "replicate": {"done": 4, "trials": 4}}
    assert [(c["neuron"], c["n"]) for c in result["cells"]] == [("leaky", 2), ("synaptic", 2)]
    # a tune stage that now selects another configuration: its replicates would mix two configurations
    tune = optuna.load_study(study_name=cell_study_name("cmp", Combination("leaky", "atan", "bptt"), "tune"),
                             storage=open_storage(storage_url, heartbeat_interval=None))
    tune.add_trial(create_trial(state=TrialState.COMPLETE, value=0.99, params={"lr": 0.0123},
                                distributions={"lr": FloatDistribution(0.0001, 1.0, log=True)}))
    with pytest.raises(ConfigError, match="holds replicates of another configuration than its tuning selects now"):
        compare(cfg, quiet=True, fit=fake_fit(neuron_effect))
