"""Plotly figures drawn from the records of :mod:`reports._records` and :mod:`reports._traces`.

Every builder takes records and returns a ``plotly.graph_objects.Figure`` whose
title says what is compared and whose axes say what is measured. Data go in as
Python lists (not NumPy arrays), so the figure JSON reads the same in every
plotly.js, optuna-dashboard's included.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from objectives import COMBINATION

from ._records import STATE_WORDS, count_text, level_counts
from ._traces import MAX_RASTER_NEURONS, TraceRecord

PALETTE = qualitative.Dark24 + qualitative.Light24
TEMPLATE = "plotly_white"
ACC_AXIS = {"title": "validation accuracy (%)", "tickformat": ".0%"}
FACTOR_TITLES = {"neuron": "neuron model", "surrogate": "surrogate gradient", "backprop": "backprop method"}
#: how a validation curve looks by trial state: dash, opacity, width
CURVE_STYLE = {
    "COMPLETE": ("solid", 1.0, 2.0),
    "RUNNING": ("dot", 0.8, 1.5),
    "PRUNED": ("dash", 0.7, 1.4),
    "FAIL": ("dashdot", 0.7, 1.4),
}
#: how a trial's point looks by state (the symbol at the end of a pruned curve too): symbol, size
POINT_STYLE = {
    "COMPLETE": ("circle", 7),
    "PRUNED": ("x-thin-open", 9),
    "FAIL": ("triangle-down-open", 9),
    "RUNNING": ("diamond-open", 8),
}
#: a level with fewer trials than this to summarize gets its trials as points alone, no box: the quartiles
#: of three or four trials are the trials themselves
MIN_BOX = 5


def _sorted(values) -> list:
    return sorted({v for v in values}, key=str)


def _layout(fig: go.Figure, title: str, height: int, **kwargs) -> go.Figure:
    kwargs.setdefault("margin", {"t": 90, "l": 80, "r": 30, "b": 70})
    fig.update_layout(title={"text": title, "x": 0.01, "xanchor": "left"}, template=TEMPLATE, height=height, **kwargs)
    return fig


def _panel_counts(records: list[dict[str, Any]], neuron: Any, backprop: Any) -> str:
    counts: dict[str, int] = dict.fromkeys(STATE_WORDS, 0)
    for r in records:
        if r["neuron"] == neuron and r["backprop"] == backprop:
            counts[r["state"]] = counts.get(r["state"], 0) + 1
    return count_text(counts) if any(counts.values()) else "no trial"


def curves_figure(records: list[dict[str, Any]]) -> go.Figure:
    """Validation accuracy vs epoch, one line per trial: a panel per neuron (rows) and backprop method (columns).

    Colour names the surrogate gradient (the same in every panel); complete trials
    are solid, pruned ones dashed with an x where the pruner stopped them, running ones dotted.
    Every neuron and backprop method with a trial gets its panel, titled with its trials by state.
    """
    neurons = _sorted(r["neuron"] for r in records)
    backprops = _sorted(r["backprop"] for r in records)
    surrogates = _sorted(r["surrogate"] for r in records)
    color = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(surrogates)}
    rows, cols = max(1, len(neurons)), max(1, len(backprops))
    fig = make_subplots(rows=rows, cols=cols, shared_xaxes=True, shared_yaxes=True, horizontal_spacing=0.03,
                        vertical_spacing=min(0.1, 0.35 / rows),
                        subplot_titles=[f"{n} neuron, {b}<br>{_panel_counts(records, n, b)}"
                                        for n in neurons for b in backprops])
    # legend entries of their own, so each shows its colour plainly whatever the state of the first trial drawn
    for surrogate in surrogates:
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=str(surrogate), legendgroup=str(surrogate),
                                 line={"color": color[surrogate], "width": 2.5}, hoverinfo="skip"), row=1, col=1)
    for state in ("COMPLETE", "PRUNED", "FAIL", "RUNNING"):
        dash, opacity, width = CURVE_STYLE[state]
        symbol, size = POINT_STYLE[state]
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines" if state == "COMPLETE" else "lines+markers",
                                 name=f"line style: {STATE_WORDS[state]}", opacity=opacity,
                                 line={"color": "gray", "dash": dash, "width": width},
                                 marker={"symbol": symbol, "size": size, "color": "gray"},
                                 legendgroup="line style", hoverinfo="skip"), row=1, col=1)
    order = {"PRUNED": 0, "FAIL": 1, "RUNNING": 2, "COMPLETE": 3}  # complete lines on top
    for r in sorted(records, key=lambda r: (order.get(r["state"], 0), r["study"], r["number"])):
        if not r["epochs"]:
            continue
        dash, opacity, width = CURVE_STYLE.get(r["state"], CURVE_STYLE["FAIL"])
        symbol, size = POINT_STYLE.get(r["state"], POINT_STYLE["FAIL"])
        # the last point of a trial that stopped early carries its state's symbol: where the pruner stopped it
        last = [symbol if i == len(r["epochs"]) - 1 and r["state"] != "COMPLETE" else "circle"
                for i in range(len(r["epochs"]))]
        fig.add_trace(
            go.Scatter(
                x=list(r["epochs"]), y=list(r["val_acc"]), mode="lines+markers", name=str(r["surrogate"]),
                legendgroup=str(r["surrogate"]), showlegend=False, opacity=opacity,
                line={"color": color[r["surrogate"]], "dash": dash, "width": width},
                marker={"size": [size if m != "circle" else 4 for m in last], "symbol": last,
                        "line": {"color": color[r["surrogate"]], "width": 2}},
                customdata=[[r["number"], STATE_WORDS.get(r["state"], r["state"]), r["study"]]] * len(r["epochs"]),
                hovertemplate=(f"{r['combination']}<br>trial %{{customdata[0]}} (%{{customdata[1]}}) "
                               "of %{customdata[2]}<br>epoch %{x}: %{y:.2%}<extra></extra>"),
            ),
            row=neurons.index(r["neuron"]) + 1, col=backprops.index(r["backprop"]) + 1,
        )
    last_epoch = max((e for r in records for e in r["epochs"]), default=1)
    fig.update_xaxes(tickmode="linear", tick0=1, dtick=max(1, -(-last_epoch // 10)), range=[0.8, last_epoch + 0.2])
    fig.update_xaxes(title="epoch", row=rows)
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02])
    fig.update_yaxes(title="val. accuracy (%)", col=1)
    fig.update_annotations(font_size=12)
    return _layout(fig, "Validation accuracy per epoch of every trial, by neuron model (rows) and backprop method "
                        "(columns)<br><sup>colour: surrogate gradient; solid: complete, dashed with an x: pruned "
                        "(the x where it was stopped), dotted: running; each panel's title counts its trials</sup>",
                   170 + 210 * rows, legend={"title": "surrogate gradient"},
                   margin={"t": 130, "l": 80, "r": 30, "b": 70})


def _cell_text(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "no trial"
    counts = count_text({"COMPLETE": cell["finished"], "PRUNED": cell["pruned"], "FAIL": cell.get("failed") or 0})
    if cell["best_val_acc"] is None:
        return f"none complete<br>n={cell['trials']}: {counts}"
    test = "–" if cell.get("best_test_acc") is None else f"{cell['best_test_acc']:.1%}"
    return f"<b>{cell['best_val_acc']:.1%}</b> val<br>{test} test<br>n={cell['trials']}: {counts}"


def heatmap_figure(records: list[dict[str, Any]]) -> go.Figure:
    """Best validation accuracy of each neuron x surrogate cell, one panel per backprop method, one colour scale.

    Each cell also shows the test accuracy of that best trial and the cell's trials by state; the colour scale
    spans the lowest to the highest best accuracy, and its title says so in numbers.
    """
    backprops = _sorted(r["backprop"] for r in records)
    neurons = _sorted(r["neuron"] for r in records)
    surrogates = _sorted(r["surrogate"] for r in records)
    cells = {(r["backprop"], r["neuron"], r["surrogate"]): r for r in records}
    values = [r["best_val_acc"] for r in records if r["best_val_acc"] is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high - low < 1e-9:  # one value: a scale of one colour would say nothing, and plotly would pick its own
        low, high = low - 0.005, high + 0.005
    fig = make_subplots(rows=max(1, len(backprops)), cols=1, vertical_spacing=0.12 if len(backprops) > 1 else 0.1,
                        subplot_titles=[f"backprop method: {b}" for b in backprops])
    for i, b in enumerate(backprops):
        z, text = [], []
        for n in neurons:
            cell_row = [cells.get((b, n, s)) for s in surrogates]
            z.append([c["best_val_acc"] if c else None for c in cell_row])
            text.append([_cell_text(c) for c in cell_row])
        fig.add_trace(
            go.Heatmap(x=surrogates, y=neurons, z=z, text=text, texttemplate="%{text}", textfont={"size": 11},
                       coloraxis="coloraxis", xgap=2, ygap=2,
                       hovertemplate=(f"backprop {b}<br>neuron %{{y}}<br>surrogate %{{x}}<br>%{{text}}"
                                      "<extra></extra>")),
            row=i + 1, col=1,
        )
        fig.update_yaxes(title="neuron model", autorange="reversed", row=i + 1, col=1)
    fig.update_xaxes(tickangle=-20 if len(surrogates) > 4 else 0, showgrid=False)
    fig.update_yaxes(showgrid=False)
    fig.update_xaxes(title="surrogate gradient", row=max(1, len(backprops)), col=1)
    span = (f"colour scale from {low:.1%} (dark) to {high:.1%} (bright), a range of {100 * (high - low):.1f} "
            "percentage points, not 0 to 100 %")
    return _layout(
        fig, "Best validation accuracy of each neuron model × surrogate gradient, one panel per backprop method"
             f"<br><sup>each cell: best validation accuracy, the test accuracy of that trial, its trials (n) by "
             f"state; {span}</sup>",
        190 + 90 * max(1, len(backprops)) + 70 * max(1, len(backprops)) * max(1, len(neurons)),
        coloraxis={"colorscale": "Viridis", "cmin": low, "cmax": high,
                   "colorbar": {"title": {"text": f"best validation<br>accuracy<br>({low:.1%} to {high:.1%})"},
                                "tickformat": ".1%", "tickvals": [low, (low + high) / 2, high]}},
    )


def _points(name: str, y: list[float], points: list[dict[str, Any]], color: str, state: str, box: bool,
            hover: str, **kwargs: Any) -> go.Box:
    """One level's trials of one state: a box with every trial as a point, or (``box`` false) the points alone,
    drawn as plotly draws a strip plot (a box trace whose box is transparent)."""
    symbol, size = POINT_STYLE.get(state, POINT_STYLE["FAIL"])
    hidden = "rgba(255,255,255,0)"
    return go.Box(y=y, name=name, boxpoints="all", jitter=0.45, pointpos=0,
                  marker={"color": color, "size": size, "symbol": symbol, "opacity": 1.0 if state == "COMPLETE"
                          else 0.85, "line": {"color": color, "width": 1.5}},
                  line={} if box else {"color": hidden}, fillcolor=None if box else hidden,
                  hoveron="boxes+points" if box else "points",
                  customdata=[[p["number"], p["study"], STATE_WORDS.get(p["state"], p["state"])] for p in points],
                  hovertemplate=hover, **kwargs)


def distributions_figure(records: list[dict[str, Any]]) -> go.Figure:
    """Validation accuracy of every trial by neuron, surrogate and backprop: complete trials as dots (and a box
    from :data:`MIN_BOX` of them on), pruned ones as x at the best accuracy they reached before they were stopped.

    Every level with a trial has its place on its axis, labelled with its trials by state, whether or not any of
    them has an accuracy to draw.
    """
    fig = make_subplots(rows=1, cols=len(COMBINATION), shared_yaxes=True, horizontal_spacing=0.05,
                        subplot_titles=[f"by {FACTOR_TITLES[f]}" for f in COMBINATION])
    shown: set[str] = set()
    floor = min((r["val_acc"] for r in records if r["val_acc"] is not None), default=0.0)
    for col, factor in enumerate(COMBINATION, start=1):
        rows = [r for r in records if r["factor"] == factor]
        levels = _sorted(r["level"] for r in rows)
        counts = {level: dict.fromkeys(STATE_WORDS, 0) for level in levels}
        for r in rows:
            counts[r["level"]][r["state"]] = counts[r["level"]].get(r["state"], 0) + 1
        labels = [f"{level}<br>{count_text(counts[level], '<br>')}" for level in levels]
        for j, level in enumerate(levels):
            color = PALETTE[j % len(PALETTE)]
            for state in ("COMPLETE", "PRUNED", "FAIL", "RUNNING"):
                points = [r for r in rows if r["level"] == level and r["state"] == state and r["val_acc"] is not None]
                if not points:
                    continue
                word = STATE_WORDS[state]
                what = "validation accuracy" if state == "COMPLETE" else "best validation accuracy before it stopped"
                hover = (f"{FACTOR_TITLES[factor]} {level}<br>trial %{{customdata[0]}} of %{{customdata[1]}} "
                         f"(%{{customdata[2]}})<br>{what} %{{y:.2%}}<extra></extra>")
                legend = f"{word} trial" if state == "COMPLETE" else f"{word} trial (its best before it stopped)"
                fig.add_trace(_points(labels[j], [p["val_acc"] for p in points], points, color, state,
                                      state == "COMPLETE" and len(points) >= MIN_BOX, hover,
                                      x=[labels[j]] * len(points), legendgroup=state, showlegend=False),
                              row=1, col=col)
                if state not in shown:  # one gray legend entry per state
                    shown.add(state)
                    symbol, size = POINT_STYLE[state]
                    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=legend, legendgroup=state,
                                             marker={"symbol": symbol, "size": size, "color": "gray"},
                                             hoverinfo="skip"), row=1, col=1)
            if not any(r["level"] == level and r["val_acc"] is not None for r in rows):
                # its trials have no accuracy to draw (all failed before an epoch): a word in its place keeps the
                # level on the axis, where an empty category would vanish
                fig.add_trace(go.Scatter(x=[labels[j]], y=[floor], mode="text", text=["no accuracy"],
                                         textposition="top center", textfont={"color": color}, cliponaxis=False,
                                         showlegend=False, hoverinfo="skip"),
                              row=1, col=col)
        fig.update_xaxes(title=FACTOR_TITLES[factor], categoryorder="array", categoryarray=labels, type="category",
                         row=1, col=col)
    fig.update_yaxes(ACC_AXIS, row=1, col=1)
    return _layout(fig, "Validation accuracy of every trial by neuron model, surrogate gradient and backprop method"
                        f"<br><sup>dots: complete trials (box: quartiles, from {MIN_BOX} trials on); x: pruned trials "
                        "at the best accuracy they reached before they were stopped; under each level its trials by "
                        "state</sup>", 620, boxmode="overlay", margin={"t": 90, "l": 80, "r": 30, "b": 190},
                   legend={"orientation": "h", "y": -0.42, "yanchor": "top", "x": 0.5, "xanchor": "center"})


def best_by_factor_figure(records: list[dict[str, Any]]) -> go.Figure:
    """Best validation accuracy reached by each level of each factor (from summary rows alone)."""
    fig = make_subplots(rows=1, cols=len(COMBINATION), shared_yaxes=True, horizontal_spacing=0.05,
                        subplot_titles=[f"by {FACTOR_TITLES[f]}" for f in COMBINATION])
    for col, factor in enumerate(COMBINATION, start=1):
        rows = sorted((r for r in records if r["factor"] == factor), key=lambda r: str(r["level"]))
        fig.add_trace(
            go.Bar(x=[str(r["level"]) for r in rows], y=[r["best_val_acc"] for r in rows], showlegend=False,
                   marker={"color": [PALETTE[j % len(PALETTE)] for j in range(len(rows))]},
                   text=[None if r["best_val_acc"] is None else f"{r['best_val_acc']:.1%}" for r in rows],
                   hovertemplate=(f"{FACTOR_TITLES[factor]} %{{x}}<br>best validation accuracy %{{y:.2%}}"
                                  "<extra></extra>")),
            row=1, col=col,
        )
        fig.update_xaxes(title=FACTOR_TITLES[factor], tickangle=-20, row=1, col=col)
    fig.update_yaxes({**ACC_AXIS, "title": "best validation accuracy (%)"}, row=1, col=1)
    return _layout(fig, "Best validation accuracy reached with each neuron model, surrogate gradient and backprop "
                        "method", 480)


def _neuron_groups(records: list[dict[str, Any]], counts: Mapping[str, Any], value: str, fig: go.Figure,
                   missing: str) -> Iterator[tuple[str, str, str, list[tuple[str, list[dict[str, Any]]]]]]:
    """Each neuron model of ``records`` with its colour, its legend (its trials by state) and its records that have a
    ``value``, by trial state (states with none left out). A neuron with none is put in ``fig``'s legend here, with
    its counts and ``missing`` (its trials failed before reporting one), so that every level shows."""
    for j, neuron in enumerate(_sorted(r["neuron"] for r in records)):
        color = PALETTE[j % len(PALETTE)]
        legend = f"{neuron}: {count_text(counts[neuron])}"
        groups = [(state, points) for state in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")
                  if (points := [r for r in records
                                 if r["neuron"] == neuron and r["state"] == state and r[value] is not None])]
        if not groups:
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=f"{legend} ({missing})",
                                     marker={"color": color, "symbol": "circle-open"}, legendgroup=str(neuron)))
        yield neuron, color, legend, groups


def spike_rates_figure(records: list[dict[str, Any]]) -> go.Figure:
    """Spike rate per spiking layer by neuron model: complete trials as dots (a box from :data:`MIN_BOX` on), pruned
    ones as x (their last epoch); every neuron model is in the legend with its trials by state."""
    layers = sorted({r["layer"] for r in records if r["layer"] is not None},
                    key=lambda name: (name == "output", len(name), name))
    counts = level_counts([{"neuron": r["neuron"], "surrogate": None, "backprop": None, "state": r["state"]}
                           for r in {(r["study"], r["number"]): r for r in records}.values()])["neuron"]
    fig = go.Figure()
    for neuron, color, legend, groups in _neuron_groups(records, counts, "layer", fig, "no spike rates"):
        for i, (state, points) in enumerate(groups):
            what = "at its best epoch" if state == "COMPLETE" else "at its last epoch"
            hover = (f"{neuron}, layer %{{x}}<br>trial %{{customdata[0]}} of %{{customdata[1]}} (%{{customdata[2]}})"
                     f"<br>spike rate %{{y:.3f}} {what}<extra></extra>")
            trials = len({(p["study"], p["number"]) for p in points})
            fig.add_trace(_points(legend, [p["spike_rate"] for p in points], points, color, state,
                                  state == "COMPLETE" and trials >= MIN_BOX, hover, x=[p["layer"] for p in points],
                                  offsetgroup=str(neuron), legendgroup=str(neuron), showlegend=i == 0))
    fig.update_xaxes(title="spiking layer", type="category", categoryorder="array", categoryarray=layers)
    fig.update_yaxes(title="spike rate (spikes per neuron per time step)", rangemode="tozero")
    return _layout(fig, "Training spike rate of each spiking layer by neuron model<br><sup>dots: complete trials at "
                        f"their best epoch (box: quartiles, from {MIN_BOX} trials on); x: pruned trials at their last "
                        "epoch</sup>", 500, boxmode="group", legend={"title": "neuron model: trials"})


def history_figure(records: list[dict[str, Any]]) -> go.Figure:
    """The optimization history: every trial in the order trials started, coloured by neuron model, its symbol its
    state (a pruned trial at the best accuracy it reached before it was stopped), and the best complete so far."""
    counts = level_counts([{**r, "surrogate": None, "backprop": None} for r in records])["neuron"]
    fig = go.Figure()
    for neuron, color, legend, groups in _neuron_groups(records, counts, "val_acc", fig, "no accuracy"):
        for i, (state, points) in enumerate(groups):
            symbol, size = POINT_STYLE[state]
            what = "validation accuracy" if state == "COMPLETE" else "best validation accuracy before it stopped"
            fig.add_trace(go.Scatter(
                x=[p["order"] for p in points], y=[p["val_acc"] for p in points], mode="markers", name=legend,
                legendgroup=str(neuron), showlegend=i == 0,
                marker={"color": color, "symbol": symbol, "size": size, "line": {"color": color, "width": 1.5}},
                customdata=[[p["number"], p["study"], STATE_WORDS[state], p["surrogate"], p["backprop"]]
                            for p in points],
                hovertemplate=(f"{neuron} / %{{customdata[3]}} / %{{customdata[4]}}<br>trial %{{customdata[0]}} of "
                               f"%{{customdata[1]}} (%{{customdata[2]}})<br>{what} %{{y:.2%}}<extra></extra>")))
    for state in ("PRUNED", "FAIL"):
        if any(r["state"] == state and r["val_acc"] is not None for r in records):
            symbol, size = POINT_STYLE[state]
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=f"symbol: {STATE_WORDS[state]}",
                                     marker={"color": "gray", "symbol": symbol, "size": size,
                                             "line": {"color": "gray", "width": 1.5}}, hoverinfo="skip"))
    best = [r for r in records if r["best_so_far"] is not None]
    fig.add_trace(go.Scatter(x=[r["order"] for r in best], y=[r["best_so_far"] for r in best], mode="lines",
                             name="best complete so far", line={"color": "#d62728", "width": 2, "shape": "hv"},
                             hovertemplate="best so far %{y:.2%}<extra></extra>"))
    fig.update_xaxes(title="trial, in the order trials started (0 first)", rangemode="tozero")
    fig.update_yaxes(ACC_AXIS)
    return _layout(fig, "Optimization history: the validation accuracy of every trial and the best so far<br><sup>"
                        "colour: neuron model (with its trials by state); dot: complete, x: pruned (at the best "
                        "accuracy it reached before it was stopped), triangle: failed</sup>", 500,
                   legend={"title": "neuron model: trials"})


def _trace_title(rec: TraceRecord) -> str:
    return (f"{rec.neuron} / {rec.surrogate} / {rec.backprop}, trial {rec.number} of {rec.study}, "
            f"validation accuracy {rec.val_acc:.1%}")


def membrane_figure(rec: TraceRecord) -> go.Figure:
    """Output-layer membrane potential over time for each traced test image, one line per class."""
    images = rec.images
    titles = [f"test image {im.index}: label {im.label}, predicted {im.predicted}" for im in images]
    fig = make_subplots(rows=1, cols=len(images), shared_yaxes=True, horizontal_spacing=0.04, subplot_titles=titles)
    steps = list(range(rec.num_steps))
    for cls in range(len(images[0].output_membrane) if images else 0):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=f"class {cls}", legendgroup=f"class {cls}",
                                 line={"color": PALETTE[cls % len(PALETTE)], "width": 2}, hoverinfo="skip"),
                      row=1, col=1)
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name="threshold", legendgroup="threshold",
                             line={"color": "black", "dash": "dot", "width": 1.5}, hoverinfo="skip"), row=1, col=1)
    for col, im in enumerate(images, start=1):
        for cls, values in enumerate(im.output_membrane):
            is_label = cls == im.label
            what = f"class {cls}{' (label)' if is_label else ''}"
            fig.add_trace(
                go.Scatter(x=steps, y=values, mode="lines", name=f"class {cls}", legendgroup=f"class {cls}",
                           showlegend=False, opacity=1.0 if is_label else 0.45,
                           line={"color": PALETTE[cls % len(PALETTE)], "width": 4 if is_label else 1.2},
                           hovertemplate=f"{what}<br>step %{{x}}: %{{y:.3f}}<extra></extra>"),
                row=1, col=col,
            )
        fig.add_trace(go.Scatter(x=[steps[0], steps[-1]], y=[rec.threshold, rec.threshold], mode="lines",
                                 name="threshold", legendgroup="threshold", showlegend=False,
                                 line={"color": "black", "dash": "dot", "width": 1.5},
                                 hovertemplate=f"threshold {rec.threshold:g}<extra></extra>"), row=1, col=col)
        fig.update_xaxes(title="time step", row=1, col=col)
    fig.update_yaxes(title=f"membrane potential (threshold {rec.threshold:g})", row=1, col=1)
    return _layout(fig, f"Output-layer membrane potential of the best model (thick line: the true class)<br>"
                        f"<sup>{_trace_title(rec)}</sup>", 540,
                   legend={"title": "output neuron:", "orientation": "h", "y": -0.2, "yanchor": "top"})


def raster_figure(rec: TraceRecord) -> go.Figure:
    """Spike raster of every spiking layer (rows) for each traced test image (columns): a dot is a spike."""
    images = rec.images
    layers = [r.layer for r in images[0].rasters] if images else []
    titles = [f"image {im.index} (label {im.label}) · {im.rasters[i].layer}: "
              f"{im.rasters[i].n_active} of {im.rasters[i].n_neurons} fired"
              for i in range(len(layers)) for im in images]
    fig = make_subplots(rows=max(1, len(layers)), cols=max(1, len(images)), subplot_titles=titles,
                        horizontal_spacing=0.06, vertical_spacing=0.1)
    for col, im in enumerate(images, start=1):
        for row, r in enumerate(im.rasters, start=1):
            rank = {n: i for i, n in enumerate(r.shown)}
            output = r.layer == "output"
            labels = [f"class {n}" if output else f"neuron {n}" for n in r.shown]
            fig.add_trace(
                go.Scatter(x=list(r.steps), y=[rank[n] for n in r.neurons], mode="markers", showlegend=False,
                           marker={"color": PALETTE[(row - 1) % len(PALETTE)], "size": 4 if len(r.shown) > 40 else 7,
                                   "symbol": "circle"},
                           customdata=[labels[rank[n]] for n in r.neurons],
                           hovertemplate=f"{r.layer} %{{customdata}}<br>spike at step %{{x}}<extra></extra>"),
                row=row, col=col,
            )
            fig.update_xaxes(title="time step" if row == len(layers) else None, range=[-0.5, rec.num_steps - 0.5],
                             row=row, col=col)
            # the whole sample on the axis, silent neurons too: an empty band is a silent stretch of the layer
            fig.update_yaxes(range=[-0.5, len(r.shown) - 0.5], showgrid=False, zeroline=False, row=row, col=col)
            if output:
                fig.update_yaxes(tickmode="array", tickvals=list(range(len(r.shown))), ticktext=labels,
                                 row=row, col=col)
            sampled = "all" if len(r.shown) == r.n_neurons else f"{len(r.shown)} of {r.n_neurons}"
            what = "output neuron (class)" if output else f"{r.layer} neuron<br>({sampled} shown)"
            fig.update_yaxes(title=what if col == 1 else None, row=row, col=col)
    fig.update_annotations(font_size=11)
    title = (f"Spike raster of the best model: which neurons fire at which time step (dot: a spike)<br>"
             f"<sup>{_trace_title(rec)}; a layer of more than {MAX_RASTER_NEURONS} neurons shows "
             f"{MAX_RASTER_NEURONS} spread evenly over the layer, silent ones included</sup>")
    return _layout(fig, title, 260 * max(1, len(layers)) + 120)
