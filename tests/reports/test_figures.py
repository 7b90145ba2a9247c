"""Figures that hide nothing, on a study written directly (``support.mixed_study``): complete, pruned and failed
trials, one neuron whose trials were all pruned (synaptic) and one whose trials all failed before an epoch (alpha).

Every figure's records hold every trial and every level; the drawn figures name every level with its trials by
state, draw pruned trials with their own symbol, and box only a level of enough trials.
"""

from __future__ import annotations

import re

import optuna
import optuna_dashboard
import pytest
from support import MIXED, MIXED_TRIALS, mixed_study

import reports

NEURONS = set(MIXED_TRIALS)
PRUNED = {n: [max(accs) for _, _, state, accs in ts if state == "PRUNED"] for n, ts in MIXED_TRIALS.items()}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """(url, trial rows, epoch rows, summary rows) of the mixed study."""
    url = mixed_study(tmp_path_factory.mktemp("mixed"))
    data = reports.load_study_data(url, MIXED)
    trials, _ = reports.trial_rows(data)
    epochs, _ = reports.epoch_rows(data, trials)
    return url, trials, epochs, reports.summary_rows(trials)


@pytest.fixture(scope="module")
def report(mixed, tmp_path_factory):
    url, *_ = mixed
    return reports.export(url, MIXED, tmp_path_factory.mktemp("report") / "out", dashboard=False,
                          layout="per-neuron")


def test_the_level_counts_hold_every_level_also_one_entirely_pruned_or_failed(mixed):
    _, trials, _, _ = mixed
    neurons = reports.level_counts(trials)["neuron"]
    assert set(neurons) == NEURONS
    assert (neurons["synaptic"]["COMPLETE"], neurons["synaptic"]["PRUNED"]) == (0, 3)
    assert (neurons["alpha"]["COMPLETE"], neurons["alpha"]["FAIL"]) == (0, 2)
    assert (neurons["leaky"]["COMPLETE"], neurons["leaky"]["PRUNED"]) == (6, 2)


def test_every_figures_records_hold_the_pruned_trials_and_every_level(mixed):
    _, trials, epochs, summary = mixed
    curves = reports.curve_records(trials, epochs)
    dist = reports.distribution_records(trials, epochs)
    rates = reports.spike_rate_records(trials)
    history = reports.history_records(trials, epochs)
    cells = reports.heatmap_records(summary)
    for name, records in (("curves", curves), ("spike rates", rates), ("history", history), ("heatmap", cells),
                          ("distributions", [d for d in dist if d["factor"] == "neuron"])):
        neurons = {r["neuron"] if "neuron" in r else r["level"] for r in records}
        assert neurons == NEURONS, name
    n = len(trials)
    assert len(curves) == len(history) == n and len(dist) == 3 * n
    # a pruned trial is drawn at the best validation accuracy it reached before it was stopped
    for neuron, best in PRUNED.items():
        mine = sorted(d["val_acc"] for d in dist if d["factor"] == "neuron" and d["level"] == neuron
                      and d["state"] == "PRUNED")
        assert mine == sorted(best), neuron
        assert sorted(h["val_acc"] for h in history if h["neuron"] == neuron and h["state"] == "PRUNED") == mine
        assert sum(c["state"] == "PRUNED" and c["neuron"] == neuron for c in curves) == len(best)
    # the failed neuron: counted, with nothing to draw
    alpha = [d for d in dist if d["factor"] == "neuron" and d["level"] == "alpha"]
    assert [d["state"] for d in alpha] == ["FAIL", "FAIL"] and all(d["val_acc"] is None for d in alpha)
    assert [(r["layer"], r["spike_rate"]) for r in rates if r["neuron"] == "alpha"] == [(None, None)] * 2
    synaptic = [r for r in rates if r["neuron"] == "synaptic"]
    assert {r["state"] for r in synaptic} == {"PRUNED"} and len(synaptic) == 3 * 3  # three layers each
    # the best so far only ever counts complete trials
    complete = [t["value"] for t in trials if t["state"] == "COMPLETE"]
    assert history[-1]["best_so_far"] == max(complete)
    synaptic_cells = [c for c in cells if c["neuron"] == "synaptic"]
    assert all(c["best_val_acc"] is None and c["finished"] == 0 and c["pruned"] >= 1 for c in synaptic_cells)


def _names(fig) -> list[str]:
    return [t.name for t in fig.data if t.name]


def test_the_drawn_figures_name_every_level_with_its_trials_by_state(report):
    figs = report.figures
    dist = figs["distributions"]
    categories = [a.categoryarray for a in (dist.layout.xaxis, dist.layout.xaxis2, dist.layout.xaxis3)]
    assert categories[0] == ("alpha<br>0 complete<br>2 failed", "leaky<br>6 complete<br>2 pruned",
                             "synaptic<br>0 complete<br>3 pruned")
    drawn = {t.x[0] for t in dist.data if t.x and t.x[0] is not None}
    assert set(categories[0]) <= drawn  # alpha too: a word in its place, as an empty category would vanish
    assert {"leaky: 6 complete, 2 pruned", "synaptic: 0 complete, 3 pruned",
            "alpha: 0 complete, 2 failed (no accuracy)"} <= set(_names(figs["optuna_history"]))
    assert {"leaky: 6 complete, 2 pruned", "synaptic: 0 complete, 3 pruned",
            "alpha: 0 complete, 2 failed (no spike rates)"} <= set(_names(figs["spike_rates"]))
    titles = {a.text for a in figs["val_curves"].layout.annotations}
    assert {"synaptic neuron, bptt<br>0 complete, 2 pruned", "alpha neuron, bptt<br>0 complete, 2 failed",
            "alpha neuron, tbptt<br>no trial"} <= titles


def test_pruned_trials_have_their_own_symbol_and_boxes_need_five_trials(report):
    dist = report.figures["distributions"]
    boxes = [t for t in dist.data if t.type == "box"]
    pruned = [t for t in boxes if t.marker.symbol == "x-thin-open"]
    assert sorted(y for t in pruned if t.x[0].startswith("synaptic") for y in t.y) == sorted(PRUNED["synaptic"])

    def is_box(trace) -> bool:
        return trace.line.color != "rgba(255,255,255,0)"

    complete = {t.x[0].split("<br>")[0]: t for t in boxes if t.marker.symbol == "circle" and t.xaxis == "x"}
    assert len(complete["leaky"].y) == 6 and is_box(complete["leaky"])  # six trials: a box
    by_surrogate = {t.x[0].split("<br>")[0]: t for t in boxes if t.marker.symbol == "circle" and t.xaxis == "x2"}
    assert len(by_surrogate["fast_sigmoid"].y) == 2 and not is_box(by_surrogate["fast_sigmoid"])  # two: points
    assert not any(is_box(t) for t in pruned)
    history = report.figures["optuna_history"]
    assert sum(len(t.x) for t in history.data if t.mode == "markers" and t.marker.symbol == "x-thin-open"
               and t.x[0] is not None) == sum(map(len, PRUNED.values()))


def test_the_heatmap_cells_show_n_and_test_accuracy_and_the_colour_scale_its_range(report):
    fig = report.figures["heatmap"]
    best = {(r["backprop"], r["neuron"], r["surrogate"]): r for r in report.summary}
    values = [r["best_val_acc"] for r in report.summary if r["best_val_acc"] is not None]
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (min(values), max(values))
    assert f"({min(values):.1%} to {max(values):.1%})" in fig.layout.coloraxis.colorbar.title.text
    assert f"a range of {100 * (max(values) - min(values)):.1f} percentage points" in fig.layout.title.text
    panel = next(i for i, a in enumerate(fig.layout.annotations) if a.text == "backprop method: bptt")
    trace = fig.data[panel]
    for i, neuron in enumerate(trace.y):
        for j, surrogate in enumerate(trace.x):
            cell = best[("bptt", neuron, surrogate)]
            text = trace.text[i][j]
            assert f"n={cell['trials']}: {cell['finished']} complete" in text
            if cell["best_val_acc"] is not None:
                assert f"{cell['best_val_acc']:.1%}" in text and f"{cell['best_test_acc']:.1%} test" in text
            else:
                assert text.startswith("none complete")


def test_the_parallel_coordinates_give_the_accuracy_in_percent_with_a_titled_colour_bar(report):
    fig = report.figures["optuna_parallel"]
    bar = next(t for t in fig.data if t.mode == "markers")
    assert bar.marker.colorbar.tickformat == ".0%" and "accuracy" in bar.marker.colorbar.title.text
    target = list(fig.layout.xaxis.ticktext).index("validation accuracy")
    ticks = [a.text for a in fig.layout.annotations if a.x == target]
    assert ticks and all(re.fullmatch(r"\d+\.\d%", t) for t in ticks)
    assert all(a.font.size >= 12 for a in fig.layout.annotations)


def test_the_header_states_the_set_up_and_the_index_links_the_per_neuron_tables(report, mixed, tmp_path):
    index = (report.out / "index.html").read_text()
    assert ("Set-up: dataset synthetic (a subset of 400 training images, 200 held out for validation); up to 2 "
            "epochs (early-stopping patience 10); sampler random (seed 3); pruner median (n_startup_trials 2, "
            "n_warmup_steps 0); training seeds 0") in index
    links = set(re.findall(r'<a href="([^"]+/[^"]+\.csv)">', index))
    written = {str(p.relative_to(report.out)) for p in report.out.glob("*/*_results/*.csv")}
    assert links == written and "leaky/BP_results/atan.csv" in links and "alpha/SG_results/bptt.csv" in links
    url, *_ = mixed
    flat = reports.export(url, MIXED, tmp_path / "flat", dashboard=False)
    assert 'id="per-neuron"' not in (flat.out / "index.html").read_text()



def test_the_dashboard_note_says_which_of_its_plots_mean_little_for_categories_and_points_to_the_heatmap(mixed,
                                                                                                         tmp_path):
    url, *_ = mixed
    reports.export(url, MIXED, tmp_path / "out", dashboard=True)
    note = optuna_dashboard.get_note(optuna.load_study(study_name=MIXED, storage=url))
    start, end = note.index("**Reading the dashboard's own plots here.**"), note.index("end of the snn-study report")
    reading = note[start:end]  # inside the report's own block, which the next report replaces
    assert "*Contour*" in reading and "*Hyperparameter Importance*" in reading
    assert "figures/heatmap.html" in reading and "`snn-report-best-accuracy-heatmap`" in reading
