"""``export``: a study's tables, figures and ``index.html`` written to one folder, from the database alone.

Order matters for the promise "bad input writes nothing": the storage, the study
and the formats are checked first, then ``--out``; only then is anything written.
The only write to the database is the optional note and figures for
optuna-dashboard (:mod:`reports._dashboard`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import plotly
import plotly.io as pio

from objectives import STUDY_CONFIG_ATTR, STUDY_SEPARATOR, ConfigError
from storage import atomic_path, check_writable, write_atomic

from . import _comparison, _cost_figures, _cost_tables, _figures, _optuna, _records, _tables
from ._dashboard import save_to_dashboard
from ._html import PLOTLY_JS, Section, index_html
from ._load import StudyData, load_study_data, stage_of
from ._outdir import check_collisions, inside, write_manifest
from ._tables import best_trial
from ._traces import trace_records

FORMATS = ("html", "png")
#: pixels across a PNG figure (its height is the figure's own)
PNG_WIDTH = 1200
LAYOUTS = ("flat", "per-neuron")

DESCRIPTIONS = {
    "val_curves": (
        "Validation accuracy per epoch",
        "Every trial's validation accuracy (y, in %) after each training epoch (x), in one panel per neuron model "
        "(rows) and backprop method (columns), each titled with its trials by state. The colour names the surrogate "
        "gradient and is the same in every panel. Solid lines are complete trials; dashed lines ending in an x are "
        "trials the pruner stopped early (the x is where); dotted lines are still running. A curve still rising at "
        "its last epoch would gain from more epochs.",
    ),
    "heatmap": (
        "Best validation accuracy: neuron model × surrogate gradient",
        "For each backprop method, a grid of neuron models (rows) by surrogate gradients (columns); each cell shows "
        "the best validation accuracy any complete trial of that combination reached (bold), the test accuracy of "
        "that trial, and n, its trials by state. One colour scale for all panels, spanning the lowest to the highest "
        "best accuracy (its title and the subtitle give the range in numbers: a narrow range makes small gaps look "
        "large). Read across a row to compare surrogates for one neuron, down a column to compare neurons for one "
        "surrogate. 'none complete' marks a combination whose trials were all pruned, failed or are still running.",
    ),
    "distributions": (
        "Validation accuracy by neuron, surrogate and backprop",
        "The validation accuracy of every trial, grouped three ways: by neuron model, by surrogate gradient and by "
        "backprop method. Each dot is a complete trial; each x a pruned trial, at the best accuracy it reached before "
        "the pruner stopped it. A level with at least five complete trials gets a box (the middle half of them, the "
        "line in it the median); fewer are shown as dots alone. Under each level, its trials by state: a level whose "
        "trials were all pruned or failed is there too. A level whose box sits high and narrow wins reliably.",
    ),
    "best_by_factor": (
        "Best validation accuracy by neuron, surrogate and backprop",
        "The best validation accuracy reached by any combination with each neuron model, surrogate gradient and "
        "backprop method (from the summary tables alone).",
    ),
    "spike_rates": (
        "Spike rate per layer by neuron model",
        "How often neurons fire: the mean number of spikes per neuron per time step in each spiking layer (conv1, "
        "conv2, ..., output) during training, one colour per neuron model (the legend gives its trials by state). "
        "Dots are complete trials at their best epoch (a box from five trials on), x pruned trials at their last "
        "epoch. 0.5 means a neuron fires every other step; near 0, a layer is almost silent.",
    ),
    "membrane": (
        "Membrane potential of the best model",
        "The best trial's trained network, run on the first test images: the membrane potential (y) of each of the "
        "output layer's neurons, one per class, at every time step (x). The thick line is the image's true class; "
        "the dotted line is the firing threshold. The class whose neuron fires most is the prediction.",
    ),
    "raster": (
        "Spike raster of the best model",
        "The same run as the membrane figure: each dot is a spike of one neuron (row) at one time step (column); one "
        "row of panels per spiking layer (conv1, conv2, ..., output), one column per test image. The output layer's "
        "rows are the classes. A layer of more than 150 neurons shows 150 of them, evenly spaced over the whole "
        "layer, silent ones included, so a sparse layer looks sparse; each panel's title says how many of the "
        "layer's neurons fired at all.",
    ),
    "optuna_history": (
        "Optimization history",
        "The search over time: every trial in the order trials started (x) at its validation accuracy (y), coloured "
        "by neuron model; dots are complete trials, x pruned ones at the best accuracy they reached before they were "
        "stopped, triangles failed ones; the line is the best complete trial so far. The legend gives each neuron "
        "model's trials by state. A best-so-far line that stopped rising long ago suggests the search has converged.",
    ),
    "optuna_importance": (
        "Parameter importances",
        "How much each searched parameter (neuron, surrogate and backprop included) explains the validation accuracy, "
        "by Optuna's PED-ANOVA evaluator over the complete trials; the importances sum to 1. It ranks the "
        "parameters by how differently they are set in the best tenth of the trials than in all, so it needs many "
        "trials and is not a test: it is drawn only from 20 complete trials on, with what Optuna warns above it.",
    ),
    "optuna_parallel": (
        "Parallel coordinates",
        "Optuna's parallel-coordinate plot: each line is a complete trial passing through its value of every parameter "
        "that varies, coloured by its validation accuracy (the colour bar gives the range in %); bright lines show "
        "where the good trials go.",
    ),
}

@dataclass
class Report:
    """What :func:`export` wrote: the folder, the files (relative to it), the figures and the notes."""

    out: Path
    files: list[str] = field(default_factory=list)
    #: figure key -> figure (``None`` when skipped)
    figures: dict[str, Any] = field(default_factory=dict)
    #: one line per skipped figure: ``"<title>: <why>"``
    notes: list[str] = field(default_factory=list)
    #: lines for the user that are not errors (PNG export unavailable with html also asked, ...)
    warnings: list[str] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)
    #: the studies optuna-dashboard's note and figures went to, and the figures (graph object ids) saved in each
    dashboard_studies: list[str] = field(default_factory=list)
    dashboard_figures: list[str] = field(default_factory=list)
    #: a comparison's result (``comparison.json``), ``None`` for any other study
    comparison: dict[str, Any] | None = None


def parse_formats(value: str | Iterable[str]) -> tuple[str, ...]:
    """``"html,png"`` or ``["html", "png"]`` -> ``("html", "png")``, each checked against :data:`FORMATS`."""
    items = value.split(",") if isinstance(value, str) else list(value)
    formats = tuple(dict.fromkeys(f.strip().lower() for f in items if f.strip()))
    if not formats or any(f not in FORMATS for f in formats):
        raise ConfigError("--format", ",".join(items) if not isinstance(value, str) else value,
                          f"allowed: {', '.join(FORMATS)} or both, comma-separated")
    return formats


def png_problem() -> str | None:
    """``None`` when Plotly can export PNG here (kaleido and a browser it can start), else why not, in one line."""
    if importlib.util.find_spec("kaleido") is None:
        return "PNG export needs the kaleido package and a Chrome or Chromium it can start (pip install kaleido)"
    import plotly.graph_objects as go

    try:
        pio.to_image(go.Figure(go.Scatter(x=[0, 1], y=[0, 1])), format="png", width=60, height=40)
    except Exception as exc:  # kaleido raises its own errors for a missing or failing browser
        return _kaleido_failed(exc)
    return None


def _kaleido_failed(exc: Exception) -> str:
    """One line saying why kaleido's PNG export failed: the error's type and its first 200 characters."""
    return f"PNG export through kaleido failed ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"


def _drop_png(formats: tuple[str, ...], problem: str, warnings: list[str]) -> tuple[str, ...]:
    """``formats`` without png after PNG export failed for ``problem``: ConfigError on ``--format`` when png was
    the only format asked, else a line in ``warnings`` (the HTML figures are written alone)."""
    if "html" not in formats:
        raise ConfigError("--format", "png", f"{problem}; or use --format html") from None
    warnings.append(f"{problem}; wrote the HTML figures only")
    return tuple(f for f in formats if f != "png")


def prepare_out(out: Path) -> None:
    """Create ``out`` (and its parents) and check it takes a file; ConfigError on ``--out`` when not."""
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", str(out), "is a file; give a folder for the report")
    created = []
    try:
        for folder in reversed([out, *out.parents]):
            if not folder.exists():
                folder.mkdir()
                created.append(folder)
        probe = out / ".snn-report-write-check"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        for folder in reversed(created):  # leave nothing behind
            shutil.rmtree(folder, ignore_errors=True)
        reason = exc.strerror or str(exc)
        raise ConfigError("--out", str(out), f"cannot write there ({reason}); choose a writable folder") from None


def build_sections(data: StudyData, trials: list[dict[str, Any]], epochs: list[dict[str, Any]],
                   summary: list[dict[str, Any]], artifacts: str | None = None) -> list[Section]:
    """Every figure of the report (or the note why it is skipped), records first, rendering second."""

    def section(key: str, figure=None, note: str | None = None, caveat: str | None = None) -> Section:
        title, text = DESCRIPTIONS[key]
        return Section(key, title, text, figure, note, caveat)

    curves = _records.curve_records(trials, epochs)
    dist = _records.distribution_records(trials, epochs)
    rates = _records.spike_rate_records(trials)
    history = _records.history_records(trials, epochs)
    sections = [
        section("val_curves", _figures.curves_figure(curves)) if any(c["epochs"] for c in curves)
        else section("val_curves", note="no epoch recorded yet"),
        section("heatmap", _figures.heatmap_figure(_records.heatmap_records(summary))) if summary
        else section("heatmap", note="no trial yet"),
        section("distributions", _figures.distributions_figure(dist)) if any(d["val_acc"] is not None for d in dist)
        else section("distributions", note="no trial with a validation accuracy yet"),
        section("spike_rates", _figures.spike_rates_figure(rates)) if any(r["layer"] for r in rates)
        else section("spike_rates", note="no trial with spike rates yet"),
    ]
    trace, why = trace_records(data, trials, artifacts)
    if trace is not None:
        sections += [section("membrane", _figures.membrane_figure(trace)),
                     section("raster", _figures.raster_figure(trace))]
    else:
        sections += [section("membrane", note=why), section("raster", note=why)]
    sections += _cost_figures.cost_sections(data)
    sections.append(section("optuna_history", _figures.history_figure(history))
                    if any(r["val_acc"] is not None for r in history)
                    else section("optuna_history", note="no trial with a validation accuracy yet"))
    merged = _optuna.merged_study(data)
    importances, why = _optuna.importance_records(merged)
    sections.append(section("optuna_importance", _optuna.importance_figure(importances), caveat=why) if importances
                    else section("optuna_importance", note=why))
    fig, why = _optuna.parallel_figure(merged)
    sections.append(section("optuna_parallel", fig, why))
    return sections


#: the pruner settings that matter for each pruner, as the header names them
PRUNER_SETTINGS = {
    "median": ("n_startup_trials", "n_warmup_steps"),
    "percentile": ("percentile", "n_startup_trials", "n_warmup_steps"),
    "successive_halving": ("min_resource", "reduction_factor"),
    "hyperband": ("min_resource", "reduction_factor"),
}


def _values(values: Iterable[Any]) -> str:
    """``"30"``, or ``"10, 30"`` when the trials differ."""
    seen = sorted({v for v in values if v is not None}, key=lambda v: (str(type(v)), v))
    return ", ".join(str(v) for v in seen) if seen else "?"


def setup_line(data: StudyData) -> str | None:
    """``"Set-up: dataset mnist (all training images, 5000 held out for validation); up to 30 epochs
    (early-stopping patience 10); sampler tpe (seed 0); pruner median (n_startup_trials 5, n_warmup_steps 2);
    training seeds 0"``, from the trials' resolved configs and the study's config; ``None`` without either."""
    configs = [r.config for r in data.records if r.config]
    studies = [a[STUDY_CONFIG_ATTR]["study"] for a in data.study_attrs.values()
               if isinstance(a.get(STUDY_CONFIG_ATTR), dict) and isinstance(a[STUDY_CONFIG_ATTR].get("study"), dict)]
    def field(section: str, name: str) -> str:
        return _values(c.get(section, {}).get(name) for c in configs)

    parts = []
    if configs:
        subset = field("dataset", "train_subset")
        subset = "all training images" if subset == "?" else f"a subset of {subset} training images"
        parts += [f"dataset {field('dataset', 'name')} ({subset}, {field('dataset', 'val_size')} held out for "
                  "validation)",
                  f"up to {field('training', 'epochs')} epochs (early-stopping patience "
                  f"{field('training', 'early_stopping_patience')})"]
    if studies:
        sampler, seed = _values(s.get("sampler") for s in studies), _values(s.get("seed") for s in studies)
        parts.append(f"sampler {sampler} (seed {seed})")
        pruners = []
        for pruner in {repr(s.get("pruner")): s.get("pruner") for s in studies}.values():
            if not isinstance(pruner, dict):
                continue
            name = str(pruner.get("name"))
            settings = [f"{k} {pruner[k]}" for k in PRUNER_SETTINGS.get(name, ()) if pruner.get(k) is not None]
            if pruner.get("patience") is not None:
                settings.append(f"patience {pruner['patience']}")
            pruners.append(f"{name}" + (f" ({', '.join(settings)})" if settings and name != "none" else ""))
        if pruners:
            parts.append("pruner " + "; ".join(pruners))
    if configs:
        parts.append(f"training seeds {field('training', 'seed')}")
    return ("Set-up: " + "; ".join(parts)) if parts else None


def _counts(trials: list[dict[str, Any]]) -> str:
    states = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
    counts = {s: sum(r["state"] == s for r in trials) for s in states}
    return f"{len(trials)} trials: " + ", ".join(f"{counts[s]} {_records.STATE_WORDS[s]}" for s in states)


def winner_line(trials: list[dict[str, Any]]) -> str | None:
    """``"Best: leaky / atan / bptt, validation accuracy 97.50%, test accuracy 94.00% (trial 3 of grid8)"``."""
    best = best_trial(trials)
    if best is None:
        return None
    test = "" if best["test_acc"] is None else f", test accuracy {best['test_acc']:.2%}"
    return (f"Best: {_records.combination_label(best)}, validation accuracy {best['value']:.2%}{test} "
            f"(trial {best['number']} of {best['study']})")


def planned_files(tables: Iterable[str], formats: tuple[str, ...], figure_keys: Iterable[str],
                  comparison: bool = False) -> list[str]:
    """Every file a report with these tables, formats and figures (and a comparison's ``comparison.json``) may write
    into its folder (relative paths)."""
    files = [*tables, "index.html", *(["comparison.json"] if comparison else [])]
    if "html" in formats:
        files.append(PLOTLY_JS)
    files += [f"figures/{key}.{fmt}" for key in figure_keys for fmt in formats]
    return files


def write_report(out: Path, title: str, meta: list[str], winner: str | None, summary: list[dict[str, Any]],
                 sections: list[Section], formats: tuple[str, ...], tables: dict[str, tuple[list, list]],
                 report: Report, force: bool = False, ranking: str | None = None) -> None:
    """Write the CSV tables, the figures in ``formats``, plotly.js (for html) and ``index.html`` into ``out``;
    ``ranking`` is a comparison's ranking (HTML) for the top of the index, with ``comparison.json`` beside it.

    Each file is written atomically (whole or absent). A file of the same name that no report wrote is not
    replaced unless ``force`` (:func:`reports._outdir.check_collisions`, checked before anything is written).
    """
    planned = planned_files(tables, formats, [s.key for s in sections], report.comparison is not None)
    check_collisions(out, planned, force)
    write_manifest(out, planned)
    for name, (rows, columns) in tables.items():
        _tables.write_csv(inside(out, name), rows, columns)
        report.files.append(name)
    if report.comparison is not None:
        write_atomic(out / "comparison.json", json.dumps(report.comparison, indent=1) + "\n")
        report.files.append("comparison.json")
    figures_dir = out / "figures"
    figures_dir.mkdir(exist_ok=True)
    if "html" in formats:
        write_atomic(out / PLOTLY_JS, (Path(plotly.__file__).parent / "package_data" / PLOTLY_JS).read_bytes())
        report.files.append(PLOTLY_JS)
    drawn: list[tuple[Section, Any]] = []  # (section, its figure)
    for s in sections:
        report.figures[s.key] = s.figure
        if s.note or s.figure is None:
            report.notes.append(f"{s.title}: {s.note}")
            continue
        drawn.append((s, s.figure))
        if "html" in formats:
            write_atomic(inside(out, f"figures/{s.key}.html"),
                         pio.to_html(s.figure, include_plotlyjs=f"../{PLOTLY_JS}", full_html=True,
                                     config={"responsive": True}))
            report.files.append(f"figures/{s.key}.html")
    if "png" in formats and drawn:
        try:
            with contextlib.ExitStack() as stack:
                temps = [stack.enter_context(atomic_path(inside(out, f"figures/{s.key}.png"))) for s, _ in drawn]
                # one browser session for all of them: kaleido starts Chromium once per call
                pio.write_images([fig for _, fig in drawn], temps, format="png",
                                 width=PNG_WIDTH, height=[fig.layout.height or 500 for _, fig in drawn])
        except Exception as exc:  # kaleido's own errors: the browser died, timed out, ...
            formats = _drop_png(formats, _kaleido_failed(exc), report.warnings)
        else:
            report.files += [f"figures/{s.key}.png" for s, _ in drawn]
    links = [f for f in report.files if f.endswith((".csv", ".json")) and "/" not in f]
    per_neuron = [f for f in report.files if f.endswith(".csv") and "/" in f]
    write_atomic(out / "index.html", index_html(title, meta, winner, summary, sections, links,
                                                embed="html" if "html" in formats else "png", ranking=ranking,
                                                per_neuron=per_neuron))
    report.files.append("index.html")


def export(
    url: str,
    study: str,
    out: str | Path,
    *,
    formats: str | Iterable[str] = ("html",),
    layout: str = "flat",
    dashboard: bool = True,
    artifacts: str | None = None,
    force: bool = False,
) -> Report:
    """Write the report of ``study`` (or its per-combination studies) in the storage at ``url`` into ``out``.

    ``out`` gets ``trials.csv``, ``epochs.csv``, ``summary.csv``, ``latency.csv``, ``figures/*.html``
    (and ``*.png`` with ``"png"`` in ``formats``), one ``plotly.min.js`` and ``index.html``;
    ``layout="per-neuron"`` adds the original code's ``<neuron>/BP_results/<surrogate>.csv`` and
    ``<neuron>/SG_results/<backprop>.csv``. With ``dashboard``, the key figures and a
    Markdown note are saved into the study for optuna-dashboard (the only write to the
    database, one transaction); without it the database is opened for reading only. ``artifacts``
    overrides the folder of the weights artifacts. Every file is written atomically; a file in ``out``
    that no report wrote is not replaced unless ``force`` (ConfigError on ``--out`` before anything is written).

    PNG export needs kaleido: when it does not work, ``formats=("png",)`` raises
    ConfigError on ``--format`` before anything is written, and ``("html", "png")``
    writes the HTML report with a line in ``Report.warnings``. Bad input (storage,
    study, formats, layout, an unwritable ``out``) raises :class:`objectives.ConfigError`
    and writes nothing.
    """
    formats = parse_formats(formats)
    if layout not in LAYOUTS:
        raise ConfigError("--layout", layout, f"allowed: {', '.join(LAYOUTS)}")
    out = Path(out)
    data = load_study_data(url, study)
    if dashboard:
        check_writable(url)
    warnings: list[str] = []
    if "png" in formats:
        problem = png_problem()
        if problem is not None:
            formats = _drop_png(formats, problem, warnings)
    comparison = _comparison.comparison_of(data)
    report = Report(out=out, warnings=warnings, comparison=comparison)

    trials, trial_columns = _tables.trial_rows(data)
    epochs, epoch_columns = _tables.epoch_rows(data, trials)
    # a comparison's search is its stage tune: the replicates have their own tables and figures
    searched = trials if comparison is None else [r for r in trials if r["stage"] != "replicate"]
    summary = _tables.summary_rows(searched)
    report.summary = summary
    tables = {"trials.csv": (trials, trial_columns), "epochs.csv": (epochs, epoch_columns),
              "summary.csv": (summary, list(_tables.SUMMARY_COLUMNS)),
              "latency.csv": (_cost_tables.latency_rows(data), list(_cost_tables.LATENCY_COLUMNS))}
    if comparison is not None:
        tables["comparison.csv"] = _comparison.comparison_rows(comparison)
    if layout == "per-neuron":
        for path, rows in _tables.per_neuron_tables(summary).items():
            tables[path] = (rows, list(_tables.SUMMARY_COLUMNS))
    check_collisions(out, planned_files(tables, formats, DESCRIPTIONS, comparison is not None), force)
    prepare_out(out)
    sections = build_sections(data if comparison is None else _search_stage(data), searched, epochs, summary,
                              artifacts)
    studies = (f"{len(data.study_names)} per-combination studies {data.name}{STUDY_SEPARATOR}..."
               if data.per_combination else f"study {data.name}")
    unfinished = any(r["state"] in ("RUNNING", "WAITING") for r in trials)
    setup = setup_line(data)
    meta = [f"{studies} in {data.shown}", *([setup] if setup else []), _counts(trials),
            f"generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
            + (" while trials were still running: a snapshot" if unfinished else "")]
    winner = winner_line(trials)
    ranking = None
    if comparison is not None:
        sections = _comparison.comparison_sections(comparison, trials, epochs) + sections
        meta.insert(1, _comparison.ranking_lines(comparison)[0] + "; the summary table and the figures after the "
                    "factor panels are of the stage tune (the search), the ranking of the replicate runs")
        winner = _comparison.winner_text(comparison)
        ranking = _comparison.comparison_html(comparison)
    try:
        write_report(out, f"SNN {'comparison' if comparison else 'study'} report: {data.name}", meta, winner,
                     summary, sections, formats, tables, report, force=force, ranking=ranking)
    except OSError as exc:
        raise ConfigError("--out", str(out), f"writing the report failed ({exc.strerror or exc})") from None
    if dashboard:
        report.dashboard_studies, report.dashboard_figures = save_to_dashboard(data, report.figures, summary, winner,
                                                                               meta, comparison)
    return report


def _search_stage(data: StudyData) -> StudyData:
    """``data`` with the trials of a comparison's stage tune only (the search, for Optuna's plots)."""
    keep = [i for i, r in enumerate(data.records) if (r.stage or stage_of(r.study)) != "replicate"]
    return dataclasses.replace(data, trials=[data.trials[i] for i in keep], records=[data.records[i] for i in keep])


def print_report(report: Report, stream=sys.stdout) -> None:
    """What ``snn-study report`` prints: notes and warnings on stderr, the index path on stdout."""
    for line in report.warnings:
        print(f"snn-study report: warning: {line}", file=sys.stderr)
    for line in report.notes:
        print(f"snn-study report: skipped {line}", file=sys.stderr)
    n, k = len(report.dashboard_studies), len(report.dashboard_figures)
    if n:
        print(f"snn-study report: saved a note and {k} figure{'' if k == 1 else 's'} for optuna-dashboard in "
              f"{n} stud{'y' if n == 1 else 'ies'}", file=sys.stderr)
    print(report.out / "index.html", file=stream)
