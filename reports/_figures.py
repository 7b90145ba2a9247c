"""Plotly figures drawn from the records of :mod:`reports._records` and :mod:`reports._traces`.

Every builder takes records and returns a ``plotly.graph_objects.Figure`` whose
title says what is compared and whose axes say what is measured. Data go in as
Python lists (not NumPy arrays), so the figure JSON reads the same in every
plotly.js, optuna-dashboard's included.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from objectives import COMBINATION

from ._traces import MAX_RASTER_NEURONS, TraceRecord

PALETTE = qualitative.Dark24 + qualitative.Light24
TEMPLATE = "plotly_white"
ACC_AXIS = {"title": "validation accuracy (%)", "tickformat": ".0%"}
FACTOR_TITLES = {"neuron": "neuron model", "surrogate": "surrogate gradient", "backprop": "backprop method"}
#: how a validation curve looks by trial state: dash, opacity, width
CURVE_STYLE = {
    "COMPLETE": ("solid", 1.0, 2.0),
    "RUNNING": ("dot", 0.7, 1.5),
    "PRUNED": ("dash", 0.35, 1.2),
    "FAIL": ("dashdot", 0.35, 1.2),
}


def _sorted(values) -> list:
    return sorted({v for v in values}, key=str)


def _layout(fig: go.Figure, title: str, height: int, **kwargs) -> go.Figure:
    fig.update_layout(title={"text": title, "x": 0.01, "xanchor": "left"}, template=TEMPLATE, height=height,
                      margin={"t": 90, "l": 80, "r": 30, "b": 70}, **kwargs)
    return fig


def curves_figure(records: list[dict[str, Any]]) -> go.Figure:
    """Validation accuracy vs epoch, one line per trial: a panel per neuron (rows) and backprop method (columns).

    Colour names the surrogate gradient (the same in every panel); complete trials
    are solid, pruned ones dashed and faded, running ones dotted.
    """
    neurons = _sorted(r["neuron"] for r in records)
    backprops = _sorted(r["backprop"] for r in records)
    surrogates = _sorted(r["surrogate"] for r in records)
    color = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(surrogates)}
    rows, cols = max(1, len(neurons)), max(1, len(backprops))
    fig = make_subplots(rows=rows, cols=cols, shared_xaxes=True, shared_yaxes=True, horizontal_spacing=0.03,
                        vertical_spacing=min(0.08, 0.3 / rows),
                        subplot_titles=[f"{n} neuron, {b}" for n in neurons for b in backprops])
    # legend entries of their own, so each shows its colour plainly whatever the state of the first trial drawn
    for surrogate in surrogates:
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=str(surrogate), legendgroup=str(surrogate),
                                 line={"color": color[surrogate], "width": 2.5}, hoverinfo="skip"), row=1, col=1)
    for state in ("COMPLETE", "PRUNED", "RUNNING"):
        dash, opacity, width = CURVE_STYLE[state]
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=f"line style: {state.lower()}",
                                 line={"color": "gray", "dash": dash, "width": width}, opacity=opacity,
                                 legendgroup="line style", hoverinfo="skip"), row=1, col=1)
    order = {"PRUNED": 0, "FAIL": 1, "RUNNING": 2, "COMPLETE": 3}  # complete lines on top
    for r in sorted(records, key=lambda r: (order.get(r["state"], 0), r["study"], r["number"])):
        dash, opacity, width = CURVE_STYLE.get(r["state"], CURVE_STYLE["FAIL"])
        fig.add_trace(
            go.Scatter(
                x=list(r["epochs"]), y=list(r["val_acc"]), mode="lines+markers", name=str(r["surrogate"]),
                legendgroup=str(r["surrogate"]), showlegend=False, opacity=opacity,
                line={"color": color[r["surrogate"]], "dash": dash, "width": width}, marker={"size": 4},
                customdata=[[r["number"], r["state"].lower(), r["study"]]] * len(r["epochs"]),
                hovertemplate=(f"{r['combination']}<br>trial %{{customdata[0]}} (%{{customdata[1]}}) "
                               "of %{customdata[2]}<br>epoch %{x}: %{y:.2%}<extra></extra>"),
            ),
            row=neurons.index(r["neuron"]) + 1, col=backprops.index(r["backprop"]) + 1,
        )
    last = max((e for r in records for e in r["epochs"]), default=1)
    fig.update_xaxes(tickmode="linear", tick0=1, dtick=max(1, -(-last // 10)))
    fig.update_xaxes(title="epoch", row=rows)
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02])
    fig.update_yaxes(title="val. accuracy (%)", col=1)
    fig.update_annotations(font_size=12)
    return _layout(fig, "Validation accuracy per epoch of every trial, by neuron model (rows) and backprop method "
                        "(columns)<br><sup>colour: surrogate gradient; solid: complete, dashed and faded: pruned, "
                        "dotted: running</sup>", 150 + 190 * rows, legend={"title": "surrogate gradient"})


def _cell_text(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "no trial"
    if cell["best_val_acc"] is not None:
        return f"{cell['best_val_acc']:.1%}"
    return f"none complete<br>({cell['pruned']} pruned)" if cell.get("pruned") else "none complete"


def heatmap_figure(records: list[dict[str, Any]]) -> go.Figure:
    """Best validation accuracy of each neuron x surrogate cell, one panel per backprop method, one colour scale."""
    backprops = _sorted(r["backprop"] for r in records)
    neurons = _sorted(r["neuron"] for r in records)
    surrogates = _sorted(r["surrogate"] for r in records)
    cells = {(r["backprop"], r["neuron"], r["surrogate"]): r for r in records}
    fig = make_subplots(rows=max(1, len(backprops)), cols=1, vertical_spacing=0.12 if len(backprops) > 1 else 0.1,
                        subplot_titles=[f"backprop method: {b}" for b in backprops])
    for i, b in enumerate(backprops):
        z, text, counts = [], [], []
        for n in neurons:
            cell_row = [cells.get((b, n, s)) for s in surrogates]
            z.append([c["best_val_acc"] if c else None for c in cell_row])
            text.append([_cell_text(c) for c in cell_row])
            counts.append([f"{c['finished']} of {c['trials']}" if c else "0 of 0" for c in cell_row])
        fig.add_trace(
            go.Heatmap(x=surrogates, y=neurons, z=z, text=text, texttemplate="%{text}", customdata=counts,
                       coloraxis="coloraxis", xgap=2, ygap=2,
                       hovertemplate=(f"backprop {b}<br>neuron %{{y}}<br>surrogate %{{x}}<br>best validation accuracy "
                                      "%{text}<br>%{customdata} trials complete<extra></extra>")),
            row=i + 1, col=1,
        )
        fig.update_yaxes(title="neuron model", autorange="reversed", row=i + 1, col=1)
    fig.update_xaxes(tickangle=-20 if len(surrogates) > 4 else 0)
    fig.update_xaxes(title="surrogate gradient", row=max(1, len(backprops)), col=1)
    return _layout(
        fig, "Best validation accuracy of each neuron model × surrogate gradient, one panel per backprop method",
        160 + 90 * max(1, len(backprops)) + 45 * max(1, len(backprops)) * max(1, len(neurons)),
        coloraxis={"colorscale": "Viridis", "colorbar": {"title": {"text": "best validation<br>accuracy"},
                                                         "tickformat": ".0%"}},
    )


def distributions_figure(records: list[dict[str, Any]]) -> go.Figure:
    """Validation accuracy of complete trials by neuron, surrogate and backprop: a box and every trial as a dot."""
    fig = make_subplots(rows=1, cols=len(COMBINATION), shared_yaxes=True, horizontal_spacing=0.05,
                        subplot_titles=[f"by {FACTOR_TITLES[f]}" for f in COMBINATION])
    for col, factor in enumerate(COMBINATION, start=1):
        rows = [r for r in records if r["factor"] == factor]
        for j, level in enumerate(_sorted(r["level"] for r in rows)):
            points = [r for r in rows if r["level"] == level]
            fig.add_trace(
                go.Box(y=[p["val_acc"] for p in points], name=str(level), boxpoints="all", jitter=0.4, pointpos=0,
                       marker={"color": PALETTE[j % len(PALETTE)], "size": 6}, showlegend=False,
                       customdata=[[p["number"], p["study"]] for p in points],
                       hovertemplate=(f"{FACTOR_TITLES[factor]} {level}<br>trial %{{customdata[0]}} of "
                                      "%{customdata[1]}<br>validation accuracy %{y:.2%}<extra></extra>")),
                row=1, col=col,
            )
        fig.update_xaxes(title=FACTOR_TITLES[factor], tickangle=-20, row=1, col=col)
    fig.update_yaxes(ACC_AXIS, row=1, col=1)
    return _layout(fig, "Validation accuracy of the complete trials by neuron model, surrogate gradient and backprop "
                        "method (box: quartiles; dots: trials)", 500)


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


def spike_rates_figure(records: list[dict[str, Any]]) -> go.Figure:
    """Spike rate per spiking layer, one box per neuron model in each layer."""
    layers = sorted({r["layer"] for r in records}, key=lambda name: (name == "output", len(name), name))
    fig = go.Figure()
    for j, neuron in enumerate(_sorted(r["neuron"] for r in records)):
        points = [r for r in records if r["neuron"] == neuron]
        fig.add_trace(go.Box(x=[p["layer"] for p in points], y=[p["spike_rate"] for p in points], name=str(neuron),
                             boxpoints="all", jitter=0.3, pointpos=0,
                             marker={"color": PALETTE[j % len(PALETTE)], "size": 5},
                             customdata=[[p["number"], p["study"]] for p in points],
                             hovertemplate=(f"{neuron}, layer %{{x}}<br>trial %{{customdata[0]}} of %{{customdata[1]}}"
                                            "<br>spike rate %{y:.3f}<extra></extra>")))
    fig.update_xaxes(title="spiking layer", categoryorder="array", categoryarray=layers)
    fig.update_yaxes(title="spike rate (spikes per neuron per time step)", rangemode="tozero")
    return _layout(fig, "Training spike rate of each spiking layer by neuron model (complete trials, at their best "
                        "epoch)", 480, boxmode="group", legend={"title": "neuron model"})


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
    """Spike raster of every spiking layer (rows) for each traced test image (columns): a coloured cell is a spike."""
    images = rec.images
    layers = [r.layer for r in images[0].rasters] if images else []
    titles = [f"image {im.index} (label {im.label}) · {im.rasters[i].layer}: "
              f"{im.rasters[i].n_active} of {im.rasters[i].n_neurons} fired"
              for i in range(len(layers)) for im in images]
    fig = make_subplots(rows=max(1, len(layers)), cols=max(1, len(images)), subplot_titles=titles,
                        horizontal_spacing=0.06, vertical_spacing=0.1)
    steps = list(range(rec.num_steps))
    for col, im in enumerate(images, start=1):
        for row, r in enumerate(im.rasters, start=1):
            rank = {n: i for i, n in enumerate(r.shown)}
            z = [[0] * rec.num_steps for _ in r.shown]
            for t, n in zip(r.steps, r.neurons):
                z[rank[n]][t] = 1
            output = r.layer == "output"
            labels = [f"class {n}" if output else f"neuron {n}" for n in r.shown]
            color = PALETTE[(row - 1) % len(PALETTE)]
            fig.add_trace(
                go.Heatmap(x=steps, y=list(range(len(r.shown))), z=z, zmin=0, zmax=1, showscale=False, xgap=1,
                           ygap=0 if len(r.shown) > 40 else 1, colorscale=[[0, "#f7f7f7"], [1, color]],
                           customdata=[[label] * rec.num_steps for label in labels],
                           hovertemplate=f"{r.layer} %{{customdata}}<br>step %{{x}}: %{{z}} spike<extra></extra>"),
                row=row, col=col,
            )
            fig.update_xaxes(title="time step" if row == len(layers) else None, row=row, col=col)
            if output:
                fig.update_yaxes(tickmode="array", tickvals=list(range(len(r.shown))), ticktext=labels,
                                 row=row, col=col)
            what = "output neuron (class)" if output else f"{r.layer} neuron<br>({len(r.shown)} shown)"
            fig.update_yaxes(title=what if col == 1 else None, row=row, col=col)
    fig.update_annotations(font_size=11)
    title = (f"Spike raster of the best model: which neurons fire at which time step (coloured cell: a spike)<br>"
             f"<sup>{_trace_title(rec)}; a layer of more than {MAX_RASTER_NEURONS} neurons shows only neurons that "
             f"fired, thinned evenly to {MAX_RASTER_NEURONS}</sup>")
    return _layout(fig, title, 260 * max(1, len(layers)) + 120)
