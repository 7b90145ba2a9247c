"""The result of a comparison (``snn-study compare``), read from its replicate trials: tables, text and figures.

A comparison is a parent study name whose per-combination studies carry a stage (``<name>::tune::<cell>``,
``<name>::replicate::<cell>``). Its result is the statistics of :mod:`reports._stats` over the replicate trials
(each cell's tuned configuration trained once per seed), at the level and on the value its study config names
(``compare.alpha``, ``compare.metric``). This module turns a :class:`StudyData` into that result
(:func:`comparison_of`), into the rows of ``comparison.csv``, into lines for ``list``, ``best`` and the
dashboard note, and into the report's figures: a forest plot of the cells, the factor panels with their
significance marks, validation curves as mean +- std bands over seeds, and the main-effect shares.
"""

from __future__ import annotations

import html
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from objectives import COMBINATION, STUDY_CONFIG_ATTR, TrialRecord

from ._figures import PALETTE
from ._html import Section
from ._load import StudyData, stage_of
from ._records import curve_records
from ._stats import comparison_json

#: the value names a comparison can rank on (``compare.metric``) -> how the report says it
METRIC_NAMES = {"test_acc": "test accuracy", "val_acc": "validation accuracy"}
DEFAULT_ALPHA, DEFAULT_METRIC = 0.05, "test_acc"
#: how a level's group is drawn in the factor panels: colour, marker symbol
GROUP_STYLE = {"best": ("#1b9e77", "star"), "tied": ("#377eb8", "circle"), "worse": ("#d95f02", "x")}
#: comparison.csv: the columns before the per-seed values (``seed_<s>``)
COMPARISON_COLUMNS = ("kind", "rank", *COMBINATION, "factor", "level", "group", "tied_with_best", "n", "n_seeds",
                      "mean", "std", "ci_low", "ci_high", "diff", "diff_ci_low", "diff_ci_high", "d_z", "t",
                      "p_value", "p_holm", "n_pairs", "omnibus_p", "missing_seeds", "note")

SECTIONS = {
    "forest": (
        "Ranking: mean and confidence interval of each combination",
        "Each row is one neuron × surrogate × backprop combination, best mean on top: its tuned configuration was "
        "trained again with every replicate seed (the same seeds in every row), and the dot with its bar is the mean "
        "{value} over those seeds with its {conf} Student t interval; the small grey marks are the single seeds. "
        "Rows whose intervals overlap are not shown apart by this plot; the factor panels below test the factors.",
    ),
    "factors": (
        "Factors: each level against the best, paired over seeds",
        "For each factor, every level's mean {value} (the other factors averaged over their levels) with its {conf} "
        "interval over seeds. Each level is tested against the best level with a paired t-test over blocks of the "
        "same other factors and the same seed, and the p-values are Holm-corrected over all pairs of the factor's "
        "levels. Star: the best level; circle: tied with it (not shown worse at level {alpha}); cross: significantly "
        "worse (the label gives the corrected p). Levels of one group are not ranked apart.",
    ),
    "replicate_curves": (
        "Validation accuracy over seeds (replicate stage)",
        "The replicate runs of each combination: the line is the mean validation accuracy over its seeds after each "
        "epoch and the band the mean ± one standard deviation, in one panel per neuron model (rows) and backprop "
        "method (columns), coloured by surrogate gradient. A wide band is a configuration whose result depends on "
        "its seed.",
    ),
    "main_effects": (
        "Importance: share of the variance explained by each factor",
        "A main-effects analysis of the replicate {value}s (one value per combination and seed): the share of the "
        "total sum of squares that each factor explains (eta squared, type II), what the main effects leave to "
        "interactions between factors, and the spread between seeds of one combination. Unlike a sampler's "
        "parameter importance it is computed on the replicates, where every combination has the same seeds.",
    ),
}


def is_comparison(data: StudyData) -> bool:
    """Whether ``data`` holds the studies of a comparison (a study of either stage)."""
    return any(stage_of(name) is not None for name in data.study_names)


def settings_of(data: StudyData) -> tuple[float, str]:
    """``(alpha, metric)`` of the comparison in ``data``, from its studies' stored configs (defaults without one)."""
    for name in data.study_names:
        config = data.study_attrs.get(name, {}).get(STUDY_CONFIG_ATTR)
        section = config.get("compare") if isinstance(config, Mapping) else None
        if isinstance(section, Mapping):
            return float(section.get("alpha", DEFAULT_ALPHA)), str(section.get("metric", DEFAULT_METRIC))
    return DEFAULT_ALPHA, DEFAULT_METRIC


def _stage(record: TrialRecord) -> str | None:
    return record.stage or stage_of(record.study)


def replicate_records(records: Iterable[TrialRecord], metric: str = DEFAULT_METRIC) -> list[dict[str, Any]]:
    """The statistics' input: ``{neuron, surrogate, backprop, seed, <metric>}`` for each replicate trial done.

    A replicate that failed for good (diverged) has no value: :func:`reports.cell_stats` lists its seed as missing.
    """
    out = []
    for r in records:
        if _stage(r) != "replicate" or not r.done or r.config is None:
            continue
        value = r.value if metric == "val_acc" else r.test_acc
        out.append({**r.combination.as_dict(), "seed": r.config["training"]["seed"],
                    metric: value if r.state == "COMPLETE" else None})
    return out


def stage_counts(records: Iterable[TrialRecord]) -> dict[str, dict[str, int]]:
    """Per stage: trials done and trials in all (``{"tune": {"done": 32, "trials": 32}, ...}``)."""
    counts: dict[str, dict[str, int]] = {s: {"done": 0, "trials": 0} for s in ("tune", "replicate")}
    for r in records:
        stage = _stage(r)
        if stage in counts:
            counts[stage]["trials"] += 1
            counts[stage]["done"] += r.done
    return counts


def comparison_of(data: StudyData) -> dict[str, Any] | None:
    """The comparison result of ``data`` (:func:`reports.comparison_json` over its replicates, with the study's
    name, its metric's words and the trials of each stage), or ``None`` when ``data`` is not a comparison."""
    if not is_comparison(data):
        return None
    alpha, metric = settings_of(data)
    result = comparison_json(replicate_records(data.records, metric), alpha, value=metric)
    result.update(study=data.name, value_name=METRIC_NAMES.get(metric, metric), stages=stage_counts(data.records))
    return result


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.2f}"


def _interval(row: Mapping[str, Any]) -> str:
    return "" if row.get("ci_low") is None else f" [{_pct(row['ci_low'])}, {_pct(row['ci_high'])}]"


def _label(row: Mapping[str, Any], factors: Iterable[str]) -> str:
    return " / ".join(str(row[f]) for f in factors)


def ranking_lines(comparison: Mapping[str, Any]) -> list[str]:
    """The comparison's result in a few lines: the stages, the best combination, and per factor its best level,
    the levels tied with it and those worse (as ``list``, ``best`` and the report's headline say it)."""
    stages = comparison.get("stages", {})
    conf = f"{comparison['confidence'] * 100:g}%"
    progress = ", ".join(f"{s} {c['done']}/{c['trials']} trials done" for s, c in stages.items())
    lines = [f"comparison {comparison.get('study', '')}: {progress}" if progress else "comparison"]
    cells = [c for c in comparison["cells"] if c["mean"] is not None]
    if not cells:
        lines.append("  no replicate done yet: no ranking")
        return lines
    top = cells[0]
    name = comparison.get("value_name", comparison["value"])
    lines.append(f"  highest mean {name}: {_label(top, comparison['factors'])} {_pct(top['mean'])} %"
                 f"{_interval(top)} ({conf} CI, {top['n']} seed{'s' if top['n'] != 1 else ''})")
    for f in comparison["factor_tests"]:
        levels = f["levels"]
        if len(levels) < 2:
            lines.append(f"  {f['factor']}: one level ({f['best']})" if levels else f"  {f['factor']}: no values")
            continue
        tied = [str(r["level"]) for r in levels if r["group"] == "tied"]
        worse = [f"{r['level']} (p_holm {r['p_holm']:.2g})" for r in levels if r["group"] == "worse"]
        lines.append(f"  {f['factor']}: best {f['best']}; tied with it: {', '.join(tied) or 'none'}; "
                     f"worse: {', '.join(worse) or 'none'}")
    return lines


def comparison_rows(comparison: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """``comparison.csv``: one row per combination (``kind`` = ``combination``, its rank by mean, every seed's
    value in ``seed_<s>``) and one per factor level (``kind`` = ``factor``), and the column order."""
    rows: list[dict[str, Any]] = []
    seeds: list[Any] = []
    for rank, c in enumerate(comparison["cells"], start=1):
        per_seed = dict(zip(c["seeds"], c["values"]))
        seeds += [s for s in c["seeds"] if s not in seeds]
        rows.append({"kind": "combination", "rank": rank if c["mean"] is not None else None,
                     **{k: c[k] for k in ("n", "mean", "std", "ci_low", "ci_high", "note")},
                     **{f: c[f] for f in comparison["factors"]},
                     "missing_seeds": " ".join(map(str, c["missing_seeds"])) or None,
                     **{f"seed_{s}": v for s, v in per_seed.items()}})
    for f in comparison["factor_tests"]:
        for r in f["levels"]:
            rows.append({"kind": "factor", **{k: r[k] for k in COMPARISON_COLUMNS if k in r and k != "kind"},
                         "omnibus_p": f["omnibus"]["p_value"]})
    columns = [*COMPARISON_COLUMNS, *(f"seed_{s}" for s in sorted(seeds, key=lambda s: (str(type(s)), s)))]
    return rows, columns


def comparison_html(comparison: Mapping[str, Any]) -> str:
    """The ranking as HTML tables for ``index.html``: the combinations, then each factor's levels."""
    conf = f"{comparison['confidence'] * 100:g}%"
    name = html.escape(comparison.get("value_name", comparison["value"]))
    factors = comparison["factors"]
    out = [f"<p>Ranked on the {name} of the replicate runs (%), mean and {conf} Student t interval over seeds. "
           f"Factor levels are tested against the best with a paired t-test over matched seeds and other factors, "
           f"Holm-corrected over all pairs of a factor's levels at level {comparison['alpha']:g}; "
           "levels not shown worse than the best are <em>tied</em> with it and are not ranked apart.</p>",
           "<table><tr><th>rank</th><th>combination</th><th>seeds</th><th>mean</th>"
           f"<th>{conf} CI</th><th>std</th><th>per seed</th></tr>"]
    for rank, c in enumerate(comparison["cells"], start=1):
        seeds = " ".join(f"{v * 100:.1f}" for v in c["values"])
        missing = f" (failed: {', '.join(map(str, c['missing_seeds']))})" if c["missing_seeds"] else ""
        ci = "–" if c["ci_low"] is None else f"{_pct(c['ci_low'])} – {_pct(c['ci_high'])}"
        out.append(f'<tr{" class=best" if rank == 1 else ""}><td>{rank}</td>'
                   f'<td class="name">{html.escape(_label(c, factors))}</td><td>{c["n"]}</td>'
                   f"<td>{_pct(c['mean'])}</td><td>{ci}</td><td>{_pct(c['std'])}</td>"
                   f'<td class="name">{seeds}{html.escape(missing)}</td></tr>')
    out.append("</table>")
    for f in comparison["factor_tests"]:
        if len(f["levels"]) < 2:
            continue
        om = f["omnibus"]
        omnibus = (f"Friedman p = {om['p_value']:.3g} on {om['n_blocks']} blocks" if om["p_value"] is not None
                   else html.escape(om["note"] or ""))
        out.append(f"<h3>{html.escape(f['factor'])} <small>({omnibus})</small></h3>"
                   "<table><tr><th>level</th><th>group</th><th>mean</th><th>CI</th><th>behind the best</th>"
                   "<th>d_z</th><th>pairs</th><th>p</th><th>p (Holm)</th></tr>")
        for r in f["levels"]:
            dz = "–" if r["d_z"] is None else f"{r['d_z']:.2f}"
            p = "–" if r["p_value"] is None else f"{r['p_value']:.3g}"
            ph = "–" if r["p_holm"] is None else f"{r['p_holm']:.3g}"
            ci = "–" if r["ci_low"] is None else f"{_pct(r['ci_low'])} – {_pct(r['ci_high'])}"
            out.append(f'<tr{" class=best" if r["group"] == "best" else ""}>'
                       f'<td class="name">{html.escape(str(r["level"]))}</td><td class="name">{r["group"]}</td>'
                       f"<td>{_pct(r['mean'])}</td><td>{ci}</td><td>{_pct(r['diff'])}</td><td>{dz}</td>"
                       f"<td>{r['n_pairs'] or '–'}</td><td>{p}</td><td>{ph}</td></tr>")
        out.append("</table>")
    return "\n".join(out)


def ranking_markdown(comparison: Mapping[str, Any]) -> list[str]:
    """The ranking as Markdown lines for the dashboard note: the combinations, then each factor's groups."""
    conf = f"{comparison['confidence'] * 100:g}%"
    name = comparison.get("value_name", comparison["value"])
    lines = [f"**Comparison: {name} of the replicate runs, mean and {conf} t interval over seeds**", "",
             "| rank | combination | seeds | mean (%) | CI (%) |", "|---:|---|---:|---:|---|"]
    for rank, c in enumerate(comparison["cells"], start=1):
        ci = "–" if c["ci_low"] is None else f"{_pct(c['ci_low'])} – {_pct(c['ci_high'])}"
        lines.append(f"| {rank} | {_label(c, comparison['factors'])} | {c['n']} | {_pct(c['mean'])} | {ci} |")
    lines += ["", *[f"- {line.strip()}" for line in ranking_lines(comparison)[1:]], ""]
    return lines


# ---- figures ------------------------------------------------------------------------------------------------------


def forest_figure(comparison: Mapping[str, Any]) -> go.Figure:
    """Mean and interval of every combination, best on top, each seed's value as a small mark."""
    cells = [c for c in comparison["cells"] if c["mean"] is not None][::-1]
    factors = comparison["factors"]
    labels = [_label(c, factors) for c in cells]
    conf = f"{comparison['confidence'] * 100:g}%"
    name = comparison.get("value_name", comparison["value"])
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=[v for c in cells for v in c["values"]], y=[lab for c, lab in zip(cells, labels) for _ in c["values"]],
        mode="markers", name="one seed", marker={"color": "#999999", "size": 6, "symbol": "line-ns-open"},
        customdata=[s for c in cells for s in c["seeds"]],
        hovertemplate="%{y}<br>seed %{customdata}: %{x:.2%}<extra></extra>"))
    fig.add_trace(go.Scatter(
        x=[c["mean"] for c in cells], y=labels, mode="markers", name=f"mean, {conf} interval",
        marker={"color": "#1f4e9c", "size": 9},
        error_x={"type": "data", "symmetric": False, "thickness": 2, "width": 4,
                 "array": [(c["ci_high"] - c["mean"]) if c["ci_high"] is not None else 0 for c in cells],
                 "arrayminus": [(c["mean"] - c["ci_low"]) if c["ci_low"] is not None else 0 for c in cells]},
        customdata=[[c["n"], _pct(c["ci_low"]), _pct(c["ci_high"])] for c in cells],
        hovertemplate=("%{y}<br>mean %{x:.2%} over %{customdata[0]} seeds<br>"
                       f"{conf} CI %{{customdata[1]}} – %{{customdata[2]}} %<extra></extra>")))
    fig.update_xaxes(title=f"{name} (%)", tickformat=".1%")
    fig.update_yaxes(title=None, categoryorder="array", categoryarray=labels, automargin=True)
    seeds = max((c["n"] for c in cells), default=0)
    title = (f"{name.capitalize()} of each combination: mean and {conf} t interval over {seeds} seeds, best on top"
             "<br><sup>grey marks: single seeds; the same seeds in every row</sup>")
    fig.update_layout(title={"text": title, "x": 0.01, "xanchor": "left"}, template="plotly_white",
                      height=190 + 28 * max(1, len(cells)), margin={"t": 110, "l": 80, "r": 30, "b": 60},
                      legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.0, "yanchor": "bottom"})
    return fig


def factors_figure(comparison: Mapping[str, Any]) -> go.Figure:
    """One panel per factor: each level's mean and interval, marked best, tied or worse (with its Holm p)."""
    tests = comparison["factor_tests"]
    conf = f"{comparison['confidence'] * 100:g}%"
    name = comparison.get("value_name", comparison["value"])
    fig = make_subplots(rows=1, cols=max(1, len(tests)), shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=[_factor_title(f) for f in tests])
    for group, (color, symbol) in GROUP_STYLE.items():  # legend entries of their own
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=group, hoverinfo="skip",
                                 marker={"color": color, "symbol": symbol, "size": 11}), row=1, col=1)
    for col, f in enumerate(tests, start=1):
        for r in f["levels"]:
            color, symbol = GROUP_STYLE[r["group"]]
            text = "" if r["group"] == "best" else ("" if r["p_holm"] is None else f"p={r['p_holm']:.2g}")
            fig.add_trace(go.Scatter(
                x=[str(r["level"])], y=[r["mean"]], mode="markers+text", text=[text], textposition="top center",
                cliponaxis=False, showlegend=False, marker={"color": color, "symbol": symbol, "size": 11},
                error_y={"type": "data", "symmetric": False, "color": color,
                         "array": [(r["ci_high"] - r["mean"]) if r["ci_high"] is not None else 0],
                         "arrayminus": [(r["mean"] - r["ci_low"]) if r["ci_low"] is not None else 0]},
                hovertemplate=(f"{f['factor']} {r['level']}: {r['group']}<br>mean %{{y:.2%}}<br>"
                               f"p (Holm) {'–' if r['p_holm'] is None else format(r['p_holm'], '.3g')}"
                               "<extra></extra>")), row=1, col=col)
        fig.update_xaxes(title=f["factor"], tickangle=-20, type="category", row=1, col=col)
    fig.update_yaxes(title=f"mean {name} (%)", tickformat=".1%", row=1, col=1)
    title = (f"Each factor's levels against its best: mean and {conf} interval over seeds<br><sup>paired t over "
             f"matched seeds and other factors, Holm over all pairs of a factor's levels, level {comparison['alpha']:g}"
             "</sup>")
    fig.update_layout(title={"text": title, "x": 0.01, "xanchor": "left"}, template="plotly_white", height=480,
                      margin={"t": 110, "l": 80, "r": 30, "b": 90}, legend={"title": "group"})
    fig.update_annotations(font_size=12)
    return fig


def _factor_title(f: Mapping[str, Any]) -> str:
    om = f["omnibus"]
    if len(f["levels"]) < 2:
        return f"{f['factor']}: one level"
    return f"{f['factor']}" + (f" (Friedman p={om['p_value']:.2g})" if om["p_value"] is not None else "")


def band_records(curves: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per combination: each epoch's mean and standard deviation of the validation accuracy over its replicate
    runs, and how many runs reached that epoch (early stopping ends some before others)."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for c in curves:
        groups[tuple(c[k] for k in COMBINATION)].append(c)
    out = []
    for key in sorted(groups):
        by_epoch: dict[int, list[float]] = defaultdict(list)
        for c in groups[key]:
            for epoch, value in zip(c["epochs"], c["val_acc"]):
                by_epoch[epoch].append(value)
        epochs = sorted(by_epoch)
        out.append({**dict(zip(COMBINATION, key)), "combination": " / ".join(key), "epochs": epochs,
                    "mean": [statistics.fmean(by_epoch[e]) for e in epochs],
                    "std": [statistics.stdev(by_epoch[e]) if len(by_epoch[e]) > 1 else 0.0 for e in epochs],
                    "n": [len(by_epoch[e]) for e in epochs]})
    return out


def bands_figure(bands: list[dict[str, Any]]) -> go.Figure:
    """Mean +- std of validation accuracy over seeds per epoch: a panel per neuron and backprop, colour surrogate."""
    neurons = sorted({b["neuron"] for b in bands})
    backprops = sorted({b["backprop"] for b in bands})
    surrogates = sorted({b["surrogate"] for b in bands})
    color = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(surrogates)}
    rows, cols = max(1, len(neurons)), max(1, len(backprops))
    fig = make_subplots(rows=rows, cols=cols, shared_xaxes=True, shared_yaxes=True, horizontal_spacing=0.03,
                        vertical_spacing=min(0.08, 0.3 / rows),
                        subplot_titles=[f"{n} neuron, {b}" for n in neurons for b in backprops])
    shown: set[str] = set()
    for b in bands:
        row, col = neurons.index(b["neuron"]) + 1, backprops.index(b["backprop"]) + 1
        upper = [m + s for m, s in zip(b["mean"], b["std"])]
        lower = [m - s for m, s in zip(b["mean"], b["std"])]
        c = color[b["surrogate"]]
        fig.add_trace(go.Scatter(x=b["epochs"] + b["epochs"][::-1], y=upper + lower[::-1], mode="lines", fill="toself",
                                 fillcolor=_transparent(c), line={"width": 0}, hoverinfo="skip", showlegend=False,
                                 legendgroup=b["surrogate"]), row=row, col=col)
        fig.add_trace(go.Scatter(
            x=b["epochs"], y=b["mean"], mode="lines+markers", name=b["surrogate"], legendgroup=b["surrogate"],
            showlegend=b["surrogate"] not in shown, line={"color": c, "width": 2}, marker={"size": 4},
            customdata=[[s, n] for s, n in zip(b["std"], b["n"])],
            hovertemplate=(f"{b['combination']}<br>epoch %{{x}}: mean %{{y:.2%}} ± %{{customdata[0]:.2%}} "
                           "over %{customdata[1]} seeds<extra></extra>")), row=row, col=col)
        shown.add(b["surrogate"])
    last = max((e for b in bands for e in b["epochs"]), default=1)
    fig.update_xaxes(tickmode="linear", tick0=1, dtick=max(1, -(-last // 10)))
    fig.update_xaxes(title="epoch", row=rows)
    fig.update_yaxes(tickformat=".0%")
    fig.update_yaxes(title="val. accuracy (%)", col=1)
    fig.update_annotations(font_size=12)
    title = ("Validation accuracy of the replicate runs: mean ± std over seeds per epoch, by neuron model (rows) and "
             "backprop method (columns)<br><sup>colour: surrogate gradient</sup>")
    fig.update_layout(title={"text": title, "x": 0.01, "xanchor": "left"}, template="plotly_white",
                      height=150 + 190 * rows, margin={"t": 90, "l": 80, "r": 30, "b": 70},
                      legend={"title": "surrogate gradient"})
    return fig


def _transparent(color: str, alpha: float = 0.2) -> str:
    """A ``#rrggbb`` or ``rgb(r,g,b)`` colour as ``rgba`` with ``alpha``."""
    if color.startswith("#"):
        r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    else:
        r, g, b = (int(float(v)) for v in color[color.index("(") + 1:color.index(")")].split(",")[:3])
    return f"rgba({r},{g},{b},{alpha})"


def main_effects_figure(comparison: Mapping[str, Any]) -> go.Figure:
    """Bars of the variance shares: each factor with more than one level, the interactions and the seeds."""
    rows = [r for r in comparison["importance"] if r["share"] is not None and (r["df"] or r["source"] == "seeds")]
    n = rows[0]["n"] if rows else 0
    balanced = "balanced" if rows and rows[0]["balanced"] else "unbalanced: type II shares"
    fig = go.Figure(go.Bar(
        x=[r["share"] for r in rows], y=[r["source"] for r in rows], orientation="h",
        text=[f"{r['share']:.2f}" for r in rows], textposition="outside", cliponaxis=False,
        marker={"color": ["#aaaaaa" if r["source"] in ("interactions", "seeds") else "#3366cc" for r in rows]},
        customdata=[[r["df"], r["levels"] or "–"] for r in rows],
        hovertemplate="%{y}: share %{x:.3f}<br>df %{customdata[0]}, levels %{customdata[1]}<extra></extra>"))
    name = comparison.get("value_name", comparison["value"])
    title = (f"Share of the variance of the replicate {name} explained by each factor (eta squared)<br>"
             f"<sup>n = {n} replicate runs, {balanced}; grey: what the main effects leave to interactions and to "
             "seeds</sup>")
    fig.update_layout(title={"text": title, "x": 0.01, "xanchor": "left"}, template="plotly_white",
                      height=220 + 40 * len(rows), margin={"t": 90, "l": 110, "r": 30, "b": 60})
    fig.update_yaxes(autorange="reversed", title=None)
    fig.update_xaxes(title="share of the total sum of squares (0 to 1)", range=[0, 1])
    return fig


def comparison_sections(comparison: Mapping[str, Any], trials: list[dict[str, Any]],
                        epochs: list[dict[str, Any]]) -> list[Section]:
    """The comparison's sections of the report (or a note why each is skipped), ahead of the study's own."""
    conf = f"{comparison['confidence'] * 100:g} %"
    words = {"value": comparison.get("value_name", comparison["value"]), "conf": conf, "alpha": comparison["alpha"]}

    def section(key: str, figure: go.Figure | None = None, note: str | None = None) -> Section:
        title, text = SECTIONS[key]
        return Section(key, title, text.format(**words), figure, note)

    has_cells = any(c["mean"] is not None for c in comparison["cells"])
    none_yet = "no replicate run done yet"
    replicates = [r for r in trials if r.get("stage") == "replicate" and r["state"] == "COMPLETE"]
    bands = band_records(curve_records(replicates, epochs))
    testable = any(len(f["levels"]) > 1 for f in comparison["factor_tests"])
    shares = any(r["share"] is not None for r in comparison["importance"])
    return [
        section("forest", forest_figure(comparison)) if has_cells else section("forest", note=none_yet),
        section("factors", factors_figure(comparison)) if testable
        else section("factors", note=none_yet if not has_cells else "no factor has two levels with values"),
        section("replicate_curves", bands_figure(bands)) if bands
        else section("replicate_curves", note="no replicate run has recorded an epoch yet"),
        section("main_effects", main_effects_figure(comparison)) if shares
        else section("main_effects", note=none_yet if not has_cells else "every replicate gave the same value"),
    ]


def winner_text(comparison: Mapping[str, Any]) -> str | None:
    """The report's headline for a comparison: its best combination and each factor's ties, in one line."""
    lines = ranking_lines(comparison)
    return None if len(lines) < 2 or lines[1].startswith("  no replicate") else "; ".join(s.strip() for s in lines[1:])


__all__ = ["COMPARISON_COLUMNS", "METRIC_NAMES", "band_records", "comparison_html", "comparison_of",
           "comparison_rows", "comparison_sections", "is_comparison", "ranking_lines", "ranking_markdown",
           "replicate_records", "settings_of", "stage_counts", "winner_text"]
