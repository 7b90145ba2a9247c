"""The report's cost tables and figures: trials.csv, epochs.csv, summary.csv and latency.csv hold each trial's cost
metrics as the database keeps them, and the figures draw those numbers (replicates also as their mean over seeds)."""

from __future__ import annotations

import random
import statistics

import optuna
import pytest
from support import GRID, built_study, copy_study

import reports
from objectives import TrialRecord
from reports import _cost_figures, _cost_tables
from storage import EpochLog


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> str:
    return copy_study(built_study(tmp_path_factory), tmp_path_factory.mktemp("costs-db"), artifacts=False)


@pytest.fixture(scope="module")
def out(db, tmp_path_factory):
    folder = tmp_path_factory.mktemp("costs-report") / "out"
    reports.export(db, GRID, folder, dashboard=False)
    return folder


@pytest.fixture(scope="module")
def records(db) -> list[TrialRecord]:
    study = optuna.load_study(study_name=GRID, storage=db)
    return [TrialRecord.from_frozen_trial(GRID, t) for t in study.trials]


def test_trials_csv_holds_each_trials_test_costs_per_layer_and_its_best_epochs_validation_costs(out, records, db):
    rows = {r["number"]: r for r in reports.read_csv(out / "trials.csv")}
    header = (out / "trials.csv").read_text().splitlines()[0].split(",")
    assert set(_cost_tables.COST_COLUMNS) <= set(header) and "pareto_optimal" not in header  # one objective
    layered = [f"{c}_{layer}" for c in _cost_tables.LAYER_COLUMNS for layer in ("conv1", "conv2", "output")]
    assert header[header.index("synops"):header.index("val_synops")] == [*_cost_tables.COST_COLUMNS, *layered]
    epochs = EpochLog(db, create=False).read(GRID)
    complete = [r for r in records if r.state == "COMPLETE"]
    assert complete
    for r in complete:
        row, c = rows[r.number], r.costs
        for column in ("synops", "effective_macs", "effective_acs", "energy_proxy_uj", "spikes_per_sample",
                       "footprint_bytes", "decision_step"):
            assert row[column] == c[column], column
        assert row["cost_samples"] == c["n_samples"]
        for i, layer in enumerate(c["layers"]):
            assert row[f"spikes_per_sample_{layer}"] == c["layer_spikes_per_sample"][i]
            assert row[f"dead_fraction_{layer}"] == c["layer_dead_fraction"][i]
            assert row[f"synops_{layer}"] == c["layer_effective_macs"][i] + c["layer_effective_acs"][i]
        best = next(e for e in epochs if e["trial_number"] == r.number and e["epoch"] == r.best_epoch)
        assert row["val_synops"] == best["val_costs"]["synops"]
        assert row["val_decision_step"] == best["val_costs"]["decision_step"]
    pruned = [r for r in records if r.state == "PRUNED"]
    assert pruned
    for r in pruned:  # no test pass, so no test costs; its validation costs at its best epoch so far
        assert rows[r.number]["synops"] is None
        mine = [e for e in epochs if e["trial_number"] == r.number]
        best = max(mine, key=lambda e: e["val_acc"])
        assert rows[r.number]["val_synops"] == best["val_costs"]["synops"]


def test_epochs_csv_holds_every_epochs_validation_costs(out, db):
    table = reports.read_csv(out / "epochs.csv")
    log = EpochLog(db, create=False).read(GRID)
    assert [(r["val_synops"], r["val_decision_step"]) for r in table] == [
        (e["val_costs"]["synops"], e["val_costs"]["decision_step"]) for e in log]


def test_summary_csv_holds_the_best_trials_costs_and_the_means_over_complete_trials(out):
    trials = reports.read_csv(out / "trials.csv")
    for s in reports.read_csv(out / "summary.csv"):
        mine = [r for r in trials if (r["neuron"], r["surrogate"], r["backprop"]) == (
            s["neuron"], s["surrogate"], s["backprop"]) and r["state"] == "COMPLETE"]
        if not mine:
            assert s["best_synops"] is None and s["mean_synops"] is None
            continue
        best = next(r for r in mine if r["number"] == s["best_trial"])
        for metric in _cost_tables.SUMMARY_METRICS:
            assert s[f"best_{metric}"] == best[metric]
            assert s[f"mean_{metric}"] == pytest.approx(statistics.fmean(r[metric] for r in mine))


def test_latency_csv_holds_each_complete_trials_accuracy_at_every_step(out, records):
    table = reports.read_csv(out / "latency.csv")
    assert (out / "latency.csv").read_text().splitlines()[0].split(",") == list(_cost_tables.LATENCY_COLUMNS)
    complete = [r for r in records if r.state == "COMPLETE"]
    assert len(table) == 5 * len(complete)  # num_steps 5
    for r in complete:
        mine = [row for row in table if row["number"] == r.number]
        assert [row["step"] for row in mine] == [1, 2, 3, 4, 5]
        assert [row["accuracy"] for row in mine] == r.costs["accuracy_by_step"]
        assert mine[-1]["accuracy"] == r.test_acc
        assert (mine[0]["neuron"], mine[0]["surrogate"], mine[0]["backprop"]) == tuple(r.combination.as_dict().values())


def test_the_cost_figures_draw_every_complete_trial(db, records):
    data = reports.load_study_data(db, GRID)
    recs = _cost_figures.cost_records(data)
    complete = {r.number: r for r in records if r.state == "COMPLETE"}
    assert {r["number"] for r in recs} == set(complete)
    fig = _cost_figures.cost_accuracy_figure(recs, [])
    points = {(t.x[0], t.y[0]) for t in fig.data if t.x and t.x[0] is not None}
    assert points == {(r.costs["synops"], r.test_acc) for r in complete.values()}
    assert fig.layout.xaxis.type == "log"
    spikes = _cost_figures.layer_spike_records(recs)
    assert len(spikes) == 3 * len(complete)
    latency = _cost_figures.latency_figure(recs)
    lines = [t for t in latency.data if t.mode == "lines" and t.x[0] is not None]
    assert sorted(list(t.y) for t in lines) == sorted(r.costs["accuracy_by_step"] for r in complete.values())
    keys = [s.key for s in _cost_figures.cost_sections(data)]
    assert keys == ["cost_accuracy", "layer_spikes", "latency"]  # one objective: no Pareto front


def test_replicates_are_drawn_also_as_their_combinations_mean_over_seeds():
    def record(number, stage, acc, ops, neuron="leaky"):
        return {"study": "s::replicate::leaky/atan/bptt", "number": number, "neuron": neuron, "surrogate": "atan",
                "backprop": "bptt", "combination": f"{neuron} / atan / bptt", "stage": stage, "test_acc": acc,
                "costs": {"synops": ops, "effective_acs": ops, "effective_macs": 0.0, "energy_proxy_uj": 1.0}}

    recs = [record(0, "tune", 0.5, 100.0), record(1, "replicate", 0.8, 200.0), record(2, "replicate", 0.9, 400.0),
            record(3, "replicate", 0.7, 300.0), record(4, "replicate", 0.6, 50.0, neuron="synaptic")]
    means = _cost_figures.replicate_means(recs)
    assert [(m["neuron"], m["n"]) for m in means] == [("leaky", 3), ("synaptic", 1)]
    leaky = means[0]
    assert leaky["test_acc"] == pytest.approx(0.8) and leaky["synops"] == pytest.approx(300.0)
    assert leaky["test_acc_std"] == pytest.approx(0.1) and leaky["synops_std"] == pytest.approx(100.0)
    fig = _cost_figures.cost_accuracy_figure(recs, means)
    big = [t for t in fig.data if t.marker.size == 16]
    assert [(t.x[0], t.y[0], t.error_x.array[0]) for t in big] == [
        (300.0, pytest.approx(0.8), pytest.approx(100.0)), (50.0, 0.6, 0.0)]


@pytest.mark.parametrize("seed", range(5))
def test_the_pareto_front_is_optunas_best_trials(seed):
    rng = random.Random(seed)
    directions = ["maximize", "minimize", "minimize"][: 2 + seed % 2]
    study = optuna.create_study(directions=directions)
    for _ in range(40):
        # few distinct values, so that ties and equal trials occur
        study.add_trial(optuna.trial.create_trial(values=[rng.randint(0, 5) for _ in directions]))
    values = [t.values for t in study.trials]
    assert set(reports.pareto_front(values, directions)) == {t.number for t in study.best_trials}


def test_one_point_beaten_in_one_objective_and_equal_in_the_other_is_dominated():
    assert reports.pareto_front([(0.9, 10.0), (0.9, 12.0), (0.8, 5.0), (0.9, 10.0)], ["maximize", "minimize"]) == \
        [0, 2, 3]
