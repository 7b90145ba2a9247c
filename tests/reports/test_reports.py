"""`snn-study report` and the `reports` package on a tiny synthetic study built once by real subprocesses.

One database holds a grid study (2 neurons x 2 surrogates x 2 backprop methods) and a
per-combination study; each test reads it, or a copy where it writes or breaks something.
"""

from __future__ import annotations

import hashlib
import os
import statistics
from collections import defaultdict
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from support import (
    FIGURE_COLUMNS,
    FIGURES,
    GRID,
    PER_COMBO,
    built_study,
    cli,
    copy_study,
    run_study,
)

import reports
from objectives import ConfigError, TrialConfig, TrialRecord, path_part
from storage import EpochLog


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> str:
    """URL of a private copy of the test database (reports here write their dashboard note into it)."""
    return copy_study(built_study(tmp_path_factory), tmp_path_factory.mktemp("db"))


@pytest.fixture(scope="module")
def report(db, tmp_path_factory):
    """``snn-study report --layout per-neuron --no-dashboard`` on the grid study: (out folder, process)."""
    out = tmp_path_factory.mktemp("report") / "out"
    proc = cli("report", "--study", GRID, "--storage", db, "--out", str(out), "--layout", "per-neuron",
               "--no-dashboard")
    assert proc.returncode == 0, proc.stderr
    return out, proc


@pytest.fixture(scope="module")
def grid_trials(db):
    return optuna.load_study(study_name=GRID, storage=db).trials


def rows(path: Path) -> list[dict]:
    return reports.read_csv(path)


# ---- files and tables ----------------------------------------------------------------------------


def test_the_report_folder_has_the_tables_every_figure_one_plotly_js_and_an_index(report):
    out, proc = report
    assert proc.stdout.strip() == str(out / "index.html")
    for name in ("trials.csv", "epochs.csv", "summary.csv", "index.html", "plotly.min.js"):
        assert (out / name).is_file(), name
    assert sorted(p.stem for p in (out / "figures").glob("*.html")) == sorted(FIGURES)
    # one copy of plotly.js: every page points at it, none carries its own
    assert len(list(out.rglob("plotly*.js"))) == 1
    index = (out / "index.html").read_text()
    assert '<script src="plotly.min.js"></script>' in index and index.count("<script src=") == 1
    for page in (out / "figures").glob("*.html"):
        text = page.read_text()
        assert 'src="../plotly.min.js"' in text and len(text) < 500_000, page.name
    assert "synaptic" in index and "Summary per neuron" in index
    assert "parameter importances need at least 20" in index  # too few trials for Optuna's importance: said so
    for key in FIGURES:  # each figure: a heading, its text, and the figure embedded in the index
        assert f'id="{key}"' in index and f'id="figure-{key}"' in index


def test_trials_csv_has_one_row_per_trial_with_the_databases_numbers(report, grid_trials, db):
    out, _ = report
    table = rows(out / "trials.csv")
    header = (out / "trials.csv").read_text().splitlines()[0].split(",")
    assert FIGURE_COLUMNS <= set(header) and {"params_neuron", "params_surrogate", "params_backprop"} <= set(header)
    assert len(table) == len(grid_trials) == 8
    by_number = {r["number"]: r for r in table}
    epochs = defaultdict(list)
    for e in EpochLog(db, create=False).read(GRID):
        epochs[e["trial_number"]].append(e)
    for t in grid_trials:
        r = by_number[t.number]
        assert r["study"] == GRID and r["state"] == t.state.name
        assert all(r[k] == t.params[k] for k in ("neuron", "surrogate", "backprop"))
        assert all(r[f"params_{k}"] == v for k, v in t.params.items())
        assert r["duration_s"] == (t.datetime_complete - t.datetime_start).total_seconds()
        assert r["epochs"] == len(t.intermediate_values) == len(epochs[t.number])
        if t.state == TrialState.COMPLETE:
            assert r["value"] == t.value and r["test_acc"] == t.user_attrs["test_acc"]
            rates = list(TrialRecord.from_frozen_trial(GRID, t).spike_rates)
        else:
            assert r["value"] is None and r["test_acc"] is None
            rates = epochs[t.number][-1]["spike_rates"]  # a pruned trial: its last epoch
        assert [r["spike_rate_conv1"], r["spike_rate_conv2"], r["spike_rate_output"]] == rates
        assert r["pruned_at"] == t.user_attrs.get("pruned_at") and r["failure"] is None
    assert any(r["state"] == "PRUNED" for r in table) or all(r["state"] == "COMPLETE" for r in table)


def test_epochs_csv_is_the_epoch_log_with_each_trials_combination(report, grid_trials, db):
    out, _ = report
    table = rows(out / "epochs.csv")
    assert (out / "epochs.csv").read_text().splitlines()[0].split(",") == [
        "study", "number", "neuron", "surrogate", "backprop", "state", "epoch", "train_loss", "train_acc", "val_acc",
        "spike_rate_conv1", "spike_rate_conv2", "spike_rate_output", "val_synops", "val_energy_proxy_uj",
        "val_spikes_per_sample", "val_decision_step", "seconds", "train_samples_per_s"]
    log = EpochLog(db, create=False).read(GRID)
    assert len(table) == len(log) > 0
    params = {t.number: t.params for t in grid_trials}
    for r, e in zip(table, log):
        assert (r["number"], r["epoch"]) == (e["trial_number"], e["epoch"])
        assert r["val_acc"] == e["val_acc"] and r["train_loss"] == e["train_loss"] and r["train_acc"] == e["train_acc"]
        assert [r["spike_rate_conv1"], r["spike_rate_conv2"], r["spike_rate_output"]] == e["spike_rates"]
        trial = params[e["trial_number"]]
        assert r["neuron"] == trial["neuron"] and r["backprop"] == trial["backprop"]


def test_summary_csv_has_one_row_per_combination_with_counts_and_statistics(report, grid_trials):
    out, _ = report
    table = rows(out / "summary.csv")
    assert list(table[0]) == list(reports.SUMMARY_COLUMNS)
    groups = defaultdict(list)
    for t in grid_trials:
        groups[(t.params["neuron"], t.params["surrogate"], t.params["backprop"])].append(t)
    assert [(r["neuron"], r["surrogate"], r["backprop"]) for r in table] == sorted(groups)
    for r in table:
        trials = groups[(r["neuron"], r["surrogate"], r["backprop"])]
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        assert r["trials"] == len(trials) and r["finished"] == len(complete)
        assert r["pruned"] == sum(t.state == TrialState.PRUNED for t in trials) and r["failed"] == 0
        if complete:
            best = max(complete, key=lambda t: t.value)
            assert r["best_val_acc"] == best.value and r["best_test_acc"] == best.user_attrs["test_acc"]
            assert r["mean_val_acc"] == statistics.fmean(t.value for t in complete) and r["best_trial"] == best.number
        else:
            assert r["best_val_acc"] is None and r["mean_val_acc"] is None and r["best_test_acc"] is None
        assert r["std_val_acc"] is None  # one trial per combination in a grid: no spread to tell


def test_the_per_neuron_layout_writes_the_seeds_bp_and_sg_folders(report):
    out, _ = report
    summary = rows(out / "summary.csv")
    for neuron in ("leaky", "synaptic"):
        for surrogate in ("atan", "fast_sigmoid"):
            table = rows(out / neuron / "BP_results" / f"{surrogate}.csv")
            assert [r["backprop"] for r in table] == ["bptt", "tbptt"]
            assert table == [r for r in summary if r["neuron"] == neuron and r["surrogate"] == surrogate]
        for backprop in ("bptt", "tbptt"):
            table = rows(out / neuron / "SG_results" / f"{backprop}.csv")
            assert [r["surrogate"] for r in table] == ["atan", "fast_sigmoid"]
            assert table == [r for r in summary if r["neuron"] == neuron and r["backprop"] == backprop]


# ---- figure records --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grid_data(db):
    data = reports.load_study_data(db, GRID)
    trials, _ = reports.trial_rows(data)
    epochs, _ = reports.epoch_rows(data, trials)
    return data, trials, epochs, reports.summary_rows(trials)


def test_curve_records_hold_every_trials_validation_accuracy_per_epoch(grid_data, grid_trials):
    _, trials, epochs, _ = grid_data
    curves = {c["number"]: c for c in reports.curve_records(trials, epochs)}
    assert len(curves) == len(grid_trials)
    for t in grid_trials:
        c = curves[t.number]
        assert c["state"] == t.state.name and c["neuron"] == t.params["neuron"]
        assert dict(zip(c["epochs"], c["val_acc"])) == t.intermediate_values
        assert c["combination"] == f"{t.params['neuron']} / {t.params['surrogate']} / {t.params['backprop']}"


def test_heatmap_distribution_and_spike_rate_records_match_the_tables(grid_data, grid_trials):
    _, trials, epochs, summary = grid_data
    cells = reports.heatmap_records(summary)
    assert {(c["backprop"], c["neuron"], c["surrogate"]): (c["best_val_acc"], c["best_test_acc"]) for c in cells} == {
        (r["backprop"], r["neuron"], r["surrogate"]): (r["best_val_acc"], r["best_test_acc"]) for r in summary}
    # every trial: a complete one at its value, a pruned one at the best it reported before it was stopped
    dist = reports.distribution_records(trials, epochs)
    for factor in ("neuron", "surrogate", "backprop"):
        mine = sorted((d["level"], d["state"], d["val_acc"]) for d in dist if d["factor"] == factor)
        assert mine == sorted((t.params[factor], t.state.name, t.value if t.state == TrialState.COMPLETE
                               else max(t.intermediate_values.values())) for t in grid_trials)
    rates = reports.spike_rate_records(trials)
    assert len(rates) == 3 * len(grid_trials)
    by_number = {r["number"]: r for r in trials}
    for t in grid_trials:
        mine = [r["spike_rate"] for r in rates if r["number"] == t.number]
        row = by_number[t.number]
        assert mine == [row["spike_rate_conv1"], row["spike_rate_conv2"], row["spike_rate_output"]]
        if t.state == TrialState.COMPLETE:
            assert mine == list(TrialRecord.from_frozen_trial(GRID, t).spike_rates)


def test_the_trace_record_runs_the_best_trials_weights_on_test_images(grid_data, grid_trials):
    data, trials, _, _ = grid_data
    record, why = reports.trace_records(data, trials)
    assert why is None
    best = max((t for t in grid_trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    threshold = TrialRecord.from_frozen_trial(GRID, best).config["model"]["threshold"]
    assert (record.number, record.val_acc, record.num_steps) == (best.number, best.value, 5)
    assert record.threshold == threshold
    assert len(record.images) == 3
    for image in record.images:
        assert len(image.output_membrane) == 10 and all(len(v) == 5 for v in image.output_membrane)
        assert [r.layer for r in image.rasters] == ["conv1", "conv2", "output"]
        # 4 channels of 12x12, 8 channels of 4x4, 10 classes
        assert [r.n_neurons for r in image.rasters] == [576, 128, 10]
        # a large layer: 150 neurons spread evenly over all of it, silent ones too, first and last included
        conv1 = image.rasters[0].shown
        assert len(conv1) == 150 and (conv1[0], conv1[-1]) == (0, 575)
        assert {b - a for a, b in zip(conv1, conv1[1:])} <= {3, 4}
        for raster in image.rasters:
            assert len(raster.shown) <= 150 and set(raster.neurons) <= set(raster.shown)
            assert all(0 <= s < 5 for s in raster.steps) and len(raster.steps) == len(raster.neurons)
        assert image.rasters[2].shown == list(range(10))  # a small layer: every neuron, silent ones too


def test_the_rendered_figures_carry_the_records_numbers(tmp_path, db):
    report = reports.export(db, GRID, tmp_path / "r", dashboard=False)
    summary = {(r["backprop"], r["neuron"], r["surrogate"]): r["best_val_acc"] for r in report.summary}
    heatmap = report.figures["heatmap"]
    for trace in heatmap.data:
        backprop = heatmap.layout.annotations[heatmap.data.index(trace)].text.split(": ")[1]
        for i, neuron in enumerate(trace.y):
            for j, surrogate in enumerate(trace.x):
                assert trace.z[i][j] == summary.get((backprop, neuron, surrogate))
    curves = [t for t in report.figures["val_curves"].data if t.x and t.x[0] is not None]
    assert len(curves) == 8


def test_importances_need_enough_complete_trials_and_include_the_combination(grid_data):
    data, _, _, _ = grid_data
    merged = reports.merged_study(data)
    complete = len(merged.get_trials(states=(TrialState.COMPLETE,)))
    records, why = reports.importance_records(merged)
    assert complete < reports.MIN_IMPORTANCE_TRIALS  # the test study is small: no importance, and a note why
    assert records == [] and f"{complete} complete trials; parameter importances need at least 20" == why


def test_importances_of_a_study_large_enough_sum_to_one_and_say_what_optuna_warned():
    x, y = FloatDistribution(0, 1), FloatDistribution(0, 1)
    study = optuna.create_study(direction="maximize")
    for i in range(29):
        study.add_trial(create_trial(value=i / 29, params={"x": i / 29}, distributions={"x": x}))
    # one trial with a parameter the others lack: a regime of one trial, which PED-ANOVA warns about
    study.add_trial(create_trial(value=0.5, params={"x": 0.5, "y": 0.5}, distributions={"x": x, "y": y}))
    records, caveat = reports.importance_records(study)
    assert records[0]["param"] == "x" and abs(sum(r["importance"] for r in records) - 1) < 1e-9
    assert caveat.startswith("Optuna warns: ") and "Some regimes for parameter `y` have less than 2 trials" in caveat


def test_a_study_with_no_finished_trial_yet_merges_to_an_empty_study(db):
    # a report taken while the first trials still run: nothing to merge, and no error
    data = reports.load_study_data(db, GRID)
    running = [(s, t) for s, t in data.trials if t.state not in (TrialState.COMPLETE, TrialState.PRUNED)]
    data.trials[:] = running
    assert reports.merged_study(data).trials == []


# ---- per-combination studies, running studies, missing pieces -----------------------------------


def test_per_combination_studies_are_reported_by_their_prefix(tmp_path, db):
    out = tmp_path / "pc"
    proc = cli("report", "--study", PER_COMBO, "--storage", db, "--out", str(out), "--no-dashboard")
    assert proc.returncode == 0, proc.stderr
    table = rows(out / "trials.csv")
    assert {r["study"] for r in table} == {"pc::leaky/atan/bptt", "pc::synaptic/atan/bptt"} and len(table) == 4
    assert all(r["params_lr"] is not None for r in table)
    summary = rows(out / "summary.csv")
    assert [(r["neuron"], r["trials"]) for r in summary] == [("leaky", 2), ("synaptic", 2)]
    # the combination becomes a parameter of Optuna's plots, which span the per-combination studies
    merged = reports.merged_study(reports.load_study_data(db, PER_COMBO))
    assert {"neuron", "surrogate", "backprop", "lr"} <= set(merged.trials[0].params)
    assert len(merged.trials) == sum(r["state"] in ("COMPLETE", "PRUNED") for r in table)


def test_a_study_still_running_is_reported_as_a_snapshot(tmp_path, tmp_path_factory):
    url = copy_study(built_study(tmp_path_factory), tmp_path / "db")
    study = optuna.load_study(study_name=GRID, storage=url)
    running = study.ask({"neuron": optuna.distributions.CategoricalDistribution(["leaky", "synaptic"])})
    study.enqueue_trial({"neuron": "leaky", "surrogate": "atan", "backprop": "bptt"})
    out = tmp_path / "out"
    proc = cli("report", "--study", GRID, "--storage", url, "--out", str(out), "--no-dashboard")
    assert proc.returncode == 0, proc.stderr
    states = [r["state"] for r in rows(out / "trials.csv")]
    assert states.count("RUNNING") == 1 and states.count("WAITING") == 1 and len(states) == 10
    waiting = next(r for r in rows(out / "trials.csv") if r["state"] == "WAITING")
    assert (waiting["neuron"], waiting["surrogate"], waiting["backprop"]) == ("leaky", "atan", "bptt")
    assert running.number in {r["number"] for r in rows(out / "trials.csv")}
    assert "a snapshot" in (out / "index.html").read_text()


def test_missing_weights_skip_the_trace_figures_with_a_note(tmp_path, tmp_path_factory):
    url = copy_study(built_study(tmp_path_factory), tmp_path / "db", artifacts=False)
    out = tmp_path / "out"
    proc = cli("report", "--study", GRID, "--storage", url, "--out", str(out), "--no-dashboard")
    assert proc.returncode == 0, proc.stderr
    assert not (out / "figures" / "membrane.html").exists() and not (out / "figures" / "raster.html").exists()
    assert (out / "figures" / "heatmap.html").exists()
    index = (out / "index.html").read_text()
    assert "Skipped: no weights of trial" in index and "no such folder" in index and "pass --artifacts DIR" in index
    assert "skipped Membrane potential of the best model: no weights of trial" in proc.stderr
    # pointing --artifacts at the folder brings them back
    again = cli("report", "--study", GRID, "--storage", url, "--out", str(tmp_path / "again"), "--no-dashboard",
                "--artifacts", str(built_study(tmp_path_factory) / "artifacts"))
    assert again.returncode == 0 and (tmp_path / "again" / "figures" / "raster.html").exists()


def test_a_study_on_postgresql_is_reported_from_the_server(tmp_path, postgres_url):
    run_study(tmp_path, GRID, **{"study.storage": postgres_url, "study.artifacts": str(tmp_path / "artifacts")})
    out = tmp_path / "out"
    proc = cli("report", "--study", GRID, "--storage", postgres_url, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert len(rows(out / "trials.csv")) == 8 and len(rows(out / "summary.csv")) == 8
    # the weights come from the artifact folder the study config named
    skipped = [line for line in proc.stderr.splitlines() if "skipped" in line]
    assert (out / "figures" / "raster.html").exists() and len(skipped) == 1  # only Optuna's importance: 8 trials
    assert skipped[0].startswith("snn-study report: skipped Parameter importances: ") and "at least 20" in skipped[0]
    assert "saved a note and 3 figures for optuna-dashboard in 1 study" in proc.stderr


def test_a_corrupt_weights_file_skips_the_trace_figures_with_a_note(tmp_path, tmp_path_factory):
    url = copy_study(built_study(tmp_path_factory), tmp_path / "db")
    for artifact in (tmp_path / "db" / "artifacts").iterdir():
        artifact.write_bytes(b"not a torch file")
    proc = cli("report", "--study", GRID, "--storage", url, "--out", str(tmp_path / "out"), "--no-dashboard")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "skipped Spike raster of the best model: the weights artifact" in proc.stderr
    assert "could not be loaded as plain tensors" in (tmp_path / "out" / "index.html").read_text()


# ---- errors -------------------------------------------------------------------------------------


def test_a_study_that_does_not_exist_exits_2_with_one_line_and_writes_nothing(tmp_path, db):
    out = tmp_path / "nested" / "out"
    proc = cli("report", "--study", "nope", "--storage", db, "--out", str(out))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--study: got 'nope'; no such study" in proc.stderr
    assert "grid8" in proc.stderr and not (tmp_path / "nested").exists()


def test_a_missing_database_exits_2_and_creates_nothing(tmp_path):
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    proc = cli("report", "--study", GRID, "--storage", missing, "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "study.storage" in proc.stderr
    assert not (tmp_path / "none.db").exists() and not (tmp_path / "o").exists()


@pytest.mark.parametrize("where", ["a file", "under a file", "read-only folder"])
def test_an_unwritable_out_exits_2_with_one_line(tmp_path, db, where):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    if where == "a file":
        out = blocker
    elif where == "under a file":
        out = blocker / "report"
    elif os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        out = locked / "report"
    else:
        # root writes into a folder without write bits; sysfs refuses even root a new folder
        out = Path("/sys/snn-study-report-test")
        try:
            out.mkdir()
        except OSError:
            pass
        else:
            out.rmdir()
            pytest.skip("this machine lets root create folders in /sys")
    proc = cli("report", "--study", GRID, "--storage", db, "--out", str(out), "--no-dashboard")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "snn-study report: error: --out: got" in proc.stderr
    assert blocker.read_text() == "not a folder"


def test_an_unknown_format_exits_2(tmp_path, db):
    proc = cli("report", "--study", GRID, "--storage", db, "--out", str(tmp_path / "o"), "--format", "pdf")
    assert proc.returncode == 2 and "--format: got 'pdf'; allowed: html, png" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_png_is_written_where_kaleido_works_and_refused_in_one_line_where_not(tmp_path, db):
    problem = reports.png_problem()
    only_png = cli("report", "--study", GRID, "--storage", db, "--out", str(tmp_path / "png"), "--format", "png",
                   "--no-dashboard")
    both = cli("report", "--study", GRID, "--storage", db, "--out", str(tmp_path / "both"), "--format", "html,png",
               "--no-dashboard")
    assert both.returncode == 0, both.stderr
    assert (tmp_path / "both" / "figures" / "heatmap.html").exists()
    if problem is None:
        assert only_png.returncode == 0, only_png.stderr
        assert (tmp_path / "png" / "figures" / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert not (tmp_path / "png" / "plotly.min.js").exists()
        assert '<img src="figures/heatmap.png"' in (tmp_path / "png" / "index.html").read_text()
        assert (tmp_path / "both" / "figures" / "heatmap.png").exists()
    else:
        assert only_png.returncode == 2 and only_png.stderr.strip().count("\n") == 0
        assert "--format: got 'png'" in only_png.stderr and "kaleido" in only_png.stderr
        assert not (tmp_path / "png").exists()
        assert "warning: " in both.stderr and "wrote the HTML figures only" in both.stderr
        assert not list((tmp_path / "both" / "figures").glob("*.png"))


# ---- the database: read-only, except the dashboard note ------------------------------------------


def test_without_dashboard_the_database_is_not_written(tmp_path, tmp_path_factory):
    url = copy_study(built_study(tmp_path_factory), tmp_path / "db")
    before = hashlib.sha256((tmp_path / "db" / "study.db").read_bytes()).hexdigest()
    proc = cli("report", "--study", GRID, "--storage", url, "--out", str(tmp_path / "out"), "--no-dashboard")
    assert proc.returncode == 0, proc.stderr
    assert hashlib.sha256((tmp_path / "db" / "study.db").read_bytes()).hexdigest() == before


def test_the_dashboard_note_and_figures_are_saved_once_and_keep_the_users_text(tmp_path, tmp_path_factory):
    import optuna_dashboard
    from optuna_dashboard._note import get_note_from_system_attrs

    url = copy_study(built_study(tmp_path_factory), tmp_path / "db")
    study = optuna.load_study(study_name=GRID, storage=url)
    optuna_dashboard.save_note(study, "my own remarks")
    for attempt in range(2):
        proc = cli("report", "--study", GRID, "--storage", url, "--out", str(tmp_path / f"out{attempt}"))
        assert proc.returncode == 0, proc.stderr
        assert "saved a note and 3 figures for optuna-dashboard in 1 study" in proc.stderr
    attrs = study._storage.get_study_system_attrs(study._study_id)
    graphs = {k.split(":")[2] for k in attrs if k.startswith("dashboard:plot_data:")}
    assert graphs == {gid for gid, _ in reports.DASHBOARD_FIGURES.values()}
    note = get_note_from_system_attrs(attrs, None)["body"]
    assert note.count("## snn-study report") == 1 and note.rstrip().endswith("my own remarks")
    assert "| leaky | atan |" in note
    # trials and their attributes are untouched
    assert [t.user_attrs for t in study.trials] == [t.user_attrs for t in
                                                    optuna.load_study(study_name=GRID, storage=url).trials]


def test_the_dashboard_gets_as_many_figures_as_the_report_could_draw_and_says_so(tmp_path):
    """A study whose one trial failed before its first epoch: the heatmap is drawn, the validation curves and the
    distributions are not, so one figure is saved, and the line says one (issue 11, 15)."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="f", storage=url, direction="maximize")
    trial = study.ask()
    for name, value in TrialRecord.attrs(config=TrialConfig.from_dict({}).to_dict(), failure="crashed").items():
        trial.set_user_attr(name, value)
    study.tell(trial, state=TrialState.FAIL)
    proc = cli("report", "--study", "f", "--storage", url, "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert "saved a note and 1 figure for optuna-dashboard in 1 study" in proc.stderr, proc.stderr
    attrs = study._storage.get_study_system_attrs(study._study_id)
    assert {k.split(":")[2] for k in attrs if k.startswith("dashboard:plot_data:")} == {
        reports.DASHBOARD_FIGURES["heatmap"][0]}


# ---- names from the database never leave the report folder -------------------------------------------


def hostile_study(url: str, elsewhere: Path) -> None:
    """Study ``h`` of two complete trials whose stored combinations are paths: up, absolute, hidden, empty."""
    study = optuna.create_study(study_name="h", storage=url, direction="maximize")
    for neuron, surrogate, backprop in [("../../escaped", "..", str(elsewhere / "absolute")),
                                        ("..", "/", ".hidden")]:
        config = TrialConfig.from_dict({}).to_dict()
        config["model"].update(neuron=neuron, surrogate=surrogate)
        config["training"]["backprop"] = backprop
        trial = study.ask()
        for name, value in TrialRecord.attrs(config=config).items():
            trial.set_user_attr(name, value)
        study.tell(trial, 0.9)


def test_the_per_neuron_layout_keeps_names_from_the_database_inside_out(tmp_path):
    """Names a shared or foreign database holds become one plain path part each (objectives.path_part): nothing
    is written above ``--out``, at an absolute path, or as a hidden file (issue 11, 7)."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    hostile_study(url, tmp_path)
    out = tmp_path / "a" / "b" / "out"
    before = {p for p in tmp_path.rglob("*")}
    proc = cli("report", "--study", "h", "--storage", url, "--out", str(out), "--layout", "per-neuron",
               "--no-dashboard")
    assert proc.returncode == 0, proc.stderr
    written = {p for p in tmp_path.rglob("*")} - before
    outside = sorted(str(p) for p in written if p not in out.parents and out not in p.parents and p != out)
    assert outside == []
    per_neuron = sorted(str(p.relative_to(out)) for p in out.rglob("*.csv") if p.parent.name.endswith("_results"))
    assert per_neuron == ["%2E.%2F..%2Fescaped/BP_results/%2E..csv",
                          f"%2E.%2F..%2Fescaped/SG_results/{path_part(str(tmp_path / 'absolute'))}.csv",
                          "%2E./BP_results/%2F.csv", "%2E./SG_results/%2Ehidden.csv"]
    # the names themselves are in the files, as they were
    assert {(r["neuron"], r["surrogate"]) for r in reports.read_result_folder(out)} == {
        ("../../escaped", ".."), ("..", "/")}


# ---- the original code's Plotter ---------------------------------------------------------------------------


def test_plotter_from_a_database_writes_the_full_report(tmp_path, db, report):
    p = reports.Plotter()
    results = p.aggregate_results(db, study=GRID)
    assert results == rows(report[0] / "summary.csv")
    written = p.plot_metrics(output_dir=tmp_path / "plots")
    assert (tmp_path / "plots" / "index.html").exists() and (tmp_path / "plots" / "figures" / "heatmap.html").exists()
    assert written.dashboard_studies == []


def test_plotter_from_per_neuron_csv_folders(tmp_path, report):
    out, _ = report
    summary = rows(out / "summary.csv")
    p = reports.Plotter()
    # the original code's own example: one neuron's BP_results folder, then another neuron's whole folder
    assert p.aggregate_results(out / "leaky" / "BP_results") == [r for r in summary if r["neuron"] == "leaky"]
    assert p.aggregate_results(out / "synaptic") == summary
    assert reports.Plotter().aggregate_results(out) == summary
    result = p.plot_metrics(output_dir=tmp_path / "plots")
    assert sorted(p.name for p in (tmp_path / "plots" / "figures").iterdir()) == ["best_by_factor.html", "heatmap.html"]
    assert (tmp_path / "plots" / "plotly.min.js").exists() and rows(tmp_path / "plots" / "summary.csv") == summary
    bars = {(b["factor"], b["level"]): b["best_val_acc"] for b in reports.best_by_factor(summary)}
    best_leaky = max(r["best_val_acc"] for r in summary if r["neuron"] == "leaky" and r["best_val_acc"] is not None)
    assert bars[("neuron", "leaky")] == best_leaky and result.notes == []


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda p, db, tmp: p.aggregate_results(db), "a storage URL needs the study name"),
        (lambda p, db, tmp: p.aggregate_results(tmp), "holds no BP_results/ or SG_results/ CSV files"),
        (lambda p, db, tmp: p.aggregate_results(tmp / "nowhere"), "is neither a storage URL"),
        (lambda p, db, tmp: p.plot_metrics(tmp / "plots"), "call aggregate_results(path_or_url) first"),
        (lambda p, db, tmp: p.aggregate_results(db, study="nope"), "no such study"),
    ],
)
def test_plotter_errors_say_what_to_do(tmp_path, db, call, message):
    with pytest.raises(ConfigError, match=None) as err:
        call(reports.Plotter(), db, tmp_path)
    assert message in str(err.value)
    assert not (tmp_path / "plots").exists()
