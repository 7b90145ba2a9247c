"""The report's cost figures, drawn from records built first (as :mod:`reports._records` does for the others).

Test accuracy against synaptic operations per combination (a comparison's replicates also as
their mean over seeds), spikes per inference per layer by neuron and surrogate, test accuracy
against the time step the output is read at, and for a study of several objectives its Pareto
front (validation accuracy against the validation costs it optimized).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from objectives import COMBINATION

from ._cost_tables import best_epoch_costs, pareto_flags, study_objectives
from ._figures import PALETTE, TEMPLATE
from ._html import Section
from ._load import StudyData

#: what the figures call each metric
LABELS = {
    "val_acc": "validation accuracy",
    "synops": "synaptic operations per inference",
    "effective_acs": "effective accumulates per inference",
    "effective_macs": "effective multiply-accumulates per inference",
    "energy_proxy_uj": "energy proxy per inference (µJ)",
    "spikes_per_sample": "spikes per inference",
    "activation_sparsity": "activation sparsity",
    "decision_step": "decision time step",
    "dense_synops": "dense synaptic operations per inference",
    "footprint_bytes": "footprint (bytes)",
}
#: marker symbols, one per surrogate gradient
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "star", "triangle-down", "cross", "pentagon", "hexagon")


def cost_records(data: StudyData) -> list[dict[str, Any]]:
    """One record per complete trial with costs: its combination, stage, accuracies, test costs (``costs``), the
    validation costs of its best epoch (``val_costs``, ``None`` where not recorded) and its objective values."""
    val = best_epoch_costs(data)
    flags = pareto_flags(data) or {}
    out = []
    for r in data.records:
        if r.state != "COMPLETE" or not r.costs:
            continue
        key = (r.study, r.number)
        out.append({"study": r.study, "number": r.number, **r.combination.as_dict(),
                    "combination": r.combination.label, "stage": r.stage, "val_acc": r.value, "test_acc": r.test_acc,
                    "values": list(r.values), "costs": dict(r.costs), "val_costs": val.get(key),
                    "pareto": flags.get(key)})
    return out


def replicate_means(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each combination with replicate trials (``stage == "replicate"``: one seed each), the mean and sample
    standard deviation over the seeds of its test accuracy and synaptic operations."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r["stage"] == "replicate" and r["test_acc"] is not None:
            groups[tuple(r[k] for k in COMBINATION)].append(r)
    out = []
    for key, rows in sorted(groups.items()):
        acc = [r["test_acc"] for r in rows]
        ops = [r["costs"]["synops"] for r in rows]
        out.append({**dict(zip(COMBINATION, key)), "combination": rows[0]["combination"], "n": len(rows),
                    "test_acc": statistics.fmean(acc), "test_acc_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
                    "synops": statistics.fmean(ops), "synops_std": statistics.stdev(ops) if len(ops) > 1 else 0.0})
    return out


def layer_spike_records(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Spikes per sample of each spiking layer of every complete trial: ``{neuron, surrogate, layer, ...}``."""
    return [{"study": r["study"], "number": r["number"], "neuron": r["neuron"], "surrogate": r["surrogate"],
             "backprop": r["backprop"], "layer": layer, "spikes_per_sample": spikes}
            for r in records for layer, spikes in zip(r["costs"]["layers"], r["costs"]["layer_spikes_per_sample"])]


# ---- figures --------------------------------------------------------------------------------------------------


def _si(value: float) -> str:
    """``2.35M``: three significant digits and an SI prefix, as the hover texts' ``%{x:.3s}`` shows them."""
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{prefix}"
    return f"{value:.3g}"


def _styles(records: Sequence[dict[str, Any]]) -> tuple[dict[str, str], dict[str, str]]:
    neurons = sorted({r["neuron"] for r in records}, key=str)
    surrogates = sorted({r["surrogate"] for r in records}, key=str)
    return ({n: PALETTE[i % len(PALETTE)] for i, n in enumerate(neurons)},
            {s: SYMBOLS[i % len(SYMBOLS)] for i, s in enumerate(surrogates)})


def _legend(fig: go.Figure, colors: dict[str, str], symbols: dict[str, str]) -> None:
    """Legend entries of their own: a colour per neuron model, a marker per surrogate gradient."""
    for neuron, color in colors.items():
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=f"neuron: {neuron}", hoverinfo="skip",
                                 marker={"color": color, "symbol": "circle", "size": 10}, legendgroup="neuron"))
    for surrogate, symbol in symbols.items():
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=f"surrogate: {surrogate}", hoverinfo="skip",
                                 marker={"color": "gray", "symbol": symbol, "size": 10}, legendgroup="surrogate"))


def _finish(fig: go.Figure, title: str, height: int, **layout) -> go.Figure:
    fig.update_layout(title={"text": title, "x": 0.01, "xanchor": "left"}, template=TEMPLATE, height=height,
                      margin={"t": 90, "l": 80, "r": 30, "b": 70}, **layout)
    return fig


def cost_accuracy_figure(records: Sequence[dict[str, Any]], means: Sequence[dict[str, Any]]) -> go.Figure:
    """Test accuracy against synaptic operations per inference, one panel per backprop method: every complete
    trial a point (colour: neuron, marker: surrogate), a comparison's replicates also as their mean over seeds."""
    backprops = sorted({r["backprop"] for r in records}, key=str)
    colors, symbols = _styles(records)
    fig = make_subplots(rows=1, cols=max(1, len(backprops)), shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=[f"backprop method: {b}" for b in backprops])
    _legend(fig, colors, symbols)
    for r in records:
        c = r["costs"]
        fig.add_trace(go.Scatter(
            x=[c["synops"]], y=[r["test_acc"]], mode="markers", showlegend=False, legendgroup="neuron",
            marker={"color": colors[r["neuron"]], "symbol": symbols[r["surrogate"]], "size": 9,
                    "opacity": 0.55 if r["stage"] == "replicate" else 0.9, "line": {"width": 0.5, "color": "white"}},
            hovertemplate=(f"{r['combination']}<br>trial {r['number']} of {r['study']}"
                           f"{' (replicate)' if r['stage'] == 'replicate' else ''}<br>synaptic operations %{{x:.3s}} "
                           f"({_si(c['effective_acs'])} ACs, {_si(c['effective_macs'])} MACs)<br>test accuracy "
                           f"%{{y:.2%}}<br>energy proxy {c['energy_proxy_uj']:.3g} µJ<extra></extra>")),
            row=1, col=backprops.index(r["backprop"]) + 1)
    for m in means:
        fig.add_trace(go.Scatter(
            x=[m["synops"]], y=[m["test_acc"]], mode="markers", showlegend=False,
            error_x={"type": "data", "array": [m["synops_std"]], "color": colors.get(m["neuron"], "black")},
            error_y={"type": "data", "array": [m["test_acc_std"]], "color": colors.get(m["neuron"], "black")},
            marker={"color": colors.get(m["neuron"], "black"), "symbol": symbols.get(m["surrogate"], "circle"),
                    "size": 16, "line": {"width": 2, "color": "black"}},
            hovertemplate=(f"{m['combination']}: mean over {m['n']} seeds<br>synaptic operations %{{x:.3s}} ± "
                           f"{_si(m['synops_std'])}<br>test accuracy %{{y:.2%}} ± {m['test_acc_std']:.2%}"
                           "<extra></extra>")),
            row=1, col=backprops.index(m["backprop"]) + 1)
    fig.update_xaxes(title="synaptic operations per inference (log)", type="log")
    fig.update_yaxes(title="test accuracy (%)", tickformat=".0%", col=1)
    note = "; large outlined markers: a combination's mean over its replicate seeds (± one standard deviation)" \
        if means else ""
    return _finish(fig, "Test accuracy against synaptic operations per inference, by combination<br><sup>each "
                        "point a complete trial's best weights on the test set; colour: neuron, marker: surrogate"
                        f"{note}</sup>", 480, legend={"title": "neuron model / surrogate"})


def layer_spikes_figure(records: Sequence[dict[str, Any]]) -> go.Figure:
    """Spikes per sample of each spiking layer, one box per neuron model, one panel per surrogate gradient."""
    surrogates = sorted({r["surrogate"] for r in records}, key=str)
    colors, _ = _styles(records)
    cols = min(4, max(1, len(surrogates)))
    rows = math.ceil(len(surrogates) / cols) or 1
    fig = make_subplots(rows=rows, cols=cols, shared_yaxes=True, vertical_spacing=0.14 if rows > 1 else 0.1,
                        horizontal_spacing=0.03, subplot_titles=[f"surrogate: {s}" for s in surrogates])
    layers = sorted({r["layer"] for r in records}, key=lambda name: (name == "output", len(name), name))
    for j, surrogate in enumerate(surrogates):
        row, col = j // cols + 1, j % cols + 1
        for neuron, color in colors.items():
            points = [r for r in records if r["surrogate"] == surrogate and r["neuron"] == neuron]
            if not points:
                continue
            fig.add_trace(go.Box(
                x=[p["layer"] for p in points], y=[p["spikes_per_sample"] for p in points], name=str(neuron),
                legendgroup=str(neuron), showlegend=j == 0, boxpoints="all", jitter=0.3, pointpos=0,
                marker={"color": color, "size": 5},
                customdata=[[p["number"], p["study"], p["backprop"]] for p in points],
                hovertemplate=(f"{neuron} / {surrogate} / %{{customdata[2]}}, layer %{{x}}<br>trial "
                               "%{customdata[0]} of %{customdata[1]}<br>%{y:.4g} spikes per inference<extra></extra>")),
                row=row, col=col)
        fig.update_xaxes(categoryorder="array", categoryarray=layers, row=row, col=col)
    fig.update_yaxes(type="log")
    fig.update_yaxes(title="spikes per inference (log)", col=1)
    return _finish(fig, "Spikes per inference in each spiking layer, by neuron model (colour) and surrogate gradient "
                        "(panels)<br><sup>complete trials' best weights on the test set, summed over the layer's "
                        "neurons and the time steps</sup>", 160 + 300 * rows, boxmode="group",
                   legend={"title": "neuron model"})


def latency_figure(records: Sequence[dict[str, Any]]) -> go.Figure:
    """Test accuracy when the output is read after each time step, one line per complete trial, one panel per
    neuron model; colour: surrogate, dash: backprop method, a marker at the trial's decision step."""
    from ._figures import PALETTE

    neurons = sorted({r["neuron"] for r in records}, key=str)
    surrogates = sorted({r["surrogate"] for r in records}, key=str)
    backprops = sorted({r["backprop"] for r in records}, key=str)
    color = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(surrogates)}
    dash = {b: ("solid", "dash", "dot", "dashdot")[i % 4] for i, b in enumerate(backprops)}
    fig = make_subplots(rows=1, cols=max(1, len(neurons)), shared_yaxes=True, horizontal_spacing=0.03,
                        subplot_titles=[f"{n} neuron" for n in neurons])
    for s in surrogates:
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=f"surrogate: {s}", hoverinfo="skip",
                                 line={"color": color[s], "width": 2.5}), row=1, col=1)
    for b in backprops:
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=f"backprop: {b}", hoverinfo="skip",
                                 line={"color": "gray", "dash": dash[b]}), row=1, col=1)
    for r in records:
        c = r["costs"]
        acc = list(c["accuracy_by_step"])
        steps = list(range(1, len(acc) + 1))
        col = neurons.index(r["neuron"]) + 1
        fig.add_trace(go.Scatter(
            x=steps, y=acc, mode="lines", showlegend=False, line={"color": color[r["surrogate"]],
                                                                  "dash": dash[r["backprop"]], "width": 1.5},
            hovertemplate=f"{r['combination']}, trial {r['number']} of {r['study']}<br>read after step %{{x}}: "
                          f"%{{y:.2%}}<extra></extra>"), row=1, col=col)
        fig.add_trace(go.Scatter(
            x=[c["decision_step"]], y=[acc[c["decision_step"] - 1]], mode="markers", showlegend=False,
            marker={"color": color[r["surrogate"]], "size": 8, "symbol": "diamond", "line": {"width": 1}},
            hovertemplate=f"{r['combination']}, trial {r['number']}<br>decision step %{{x}} (99 % of the final "
                          f"accuracy)<extra></extra>"), row=1, col=col)
    fig.update_xaxes(title="output read after this many time steps")
    fig.update_yaxes(title="test accuracy (%)", tickformat=".0%", col=1)
    return _finish(fig, "Test accuracy against the time step the output is read at, one line per complete trial"
                        "<br><sup>colour: surrogate gradient; dash: backprop method; diamond: the decision step, the "
                        "first to reach 99 % of the final accuracy</sup>", 480)


def pareto_figure(records: Sequence[dict[str, Any]], objectives: Sequence[str]) -> go.Figure:
    """Validation accuracy against each cost (synaptic operations, energy proxy, and any other cost the study
    optimizes), on the validation set at each trial's best epoch; colour: neuron, marker: surrogate; the study's
    Pareto-optimal trials ringed, and joined in the panels of the costs it optimizes."""
    costs = list(dict.fromkeys(["synops", "energy_proxy_uj", *objectives[1:]]))
    colors, symbols = _styles(records)
    shown = [r for r in records if r["val_costs"] is not None]
    fig = make_subplots(rows=1, cols=len(costs), shared_yaxes=True, horizontal_spacing=0.05,
                        subplot_titles=[f"against {LABELS.get(c, c)}" for c in costs])
    _legend(fig, colors, symbols)
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines+markers", name="Pareto front", hoverinfo="skip",
                             line={"color": "black", "width": 1.5},
                             marker={"color": "rgba(0,0,0,0)", "size": 14, "line": {"width": 2, "color": "black"}}))
    for col, cost in enumerate(costs, 1):
        for r in shown:
            x = r["val_costs"][cost]
            fig.add_trace(go.Scatter(
                x=[x], y=[r["val_acc"]], mode="markers", showlegend=False,
                marker={"color": colors[r["neuron"]], "symbol": symbols[r["surrogate"]], "size": 10,
                        "line": {"width": 2.5 if r["pareto"] else 0.5, "color": "black" if r["pareto"] else "white"}},
                hovertemplate=(f"{r['combination']}<br>trial {r['number']} of {r['study']}"
                               f"{' (Pareto-optimal)' if r['pareto'] else ''}<br>{LABELS.get(cost, cost)} %{{x:.4g}}"
                               "<br>validation accuracy %{y:.2%}<extra></extra>")), row=1, col=col)
        front = sorted((r for r in shown if r["pareto"]), key=lambda r: r["val_costs"][cost])
        if cost in objectives and front:
            fig.add_trace(go.Scatter(x=[r["val_costs"][cost] for r in front], y=[r["val_acc"] for r in front],
                                     mode="lines", line={"color": "black", "width": 1.5, "shape": "hv"},
                                     showlegend=False, hoverinfo="skip"), row=1, col=col)
        log = cost in ("synops", "energy_proxy_uj", "effective_acs", "effective_macs", "spikes_per_sample")
        fig.update_xaxes(title=LABELS.get(cost, cost) + (" (log)" if log else ""), type="log" if log else "linear",
                         row=1, col=col)
    fig.update_yaxes(title="validation accuracy (%)", tickformat=".0%", col=1)
    return _finish(fig, f"Pareto front of the study: validation accuracy against cost ({', '.join(objectives)})<br>"
                        "<sup>each point a complete trial at its best epoch, on the validation set; colour: neuron, "
                        "marker: surrogate; ringed and joined: the trials no other trial beats in every objective"
                        "</sup>", 500, legend={"title": "neuron model / surrogate"})


DESCRIPTIONS = {
    "cost_accuracy": (
        "Accuracy against synaptic operations",
        "What each trained network costs at inference against what it scores: every complete trial's test accuracy "
        "(y) and its synaptic operations per test image (x, log scale; NeuroBench's effective accumulates plus "
        "multiply-accumulates over all layers and time steps), one panel per backprop method, colour by neuron model, "
        "marker by surrogate gradient. Up and to the left is better. Where a comparison re-trained a combination on "
        "several seeds, its mean over the seeds is drawn large, with one standard deviation either way.",
    ),
    "layer_spikes": (
        "Spikes per layer by neuron and surrogate",
        "How much each spiking layer fires at inference: spikes per test image summed over the layer's neurons and "
        "the time steps (log scale), one box per neuron model, one panel per surrogate gradient. Fewer spikes mean "
        "fewer accumulate operations downstream; a layer near zero is almost silent.",
    ),
    "latency": (
        "Accuracy against decision time step",
        "How soon a network can answer: the test accuracy (y) when the output is read after only the first t time "
        "steps (x), by the loss's own rule, for every complete trial; the diamond marks its decision step, the first "
        "to reach 99 % of its accuracy over the whole window. A network that decides early can be run for fewer "
        "steps, and costs proportionally less.",
    ),
    "pareto": (
        "Pareto front: accuracy against cost",
        "The trade-off this study of several objectives searched: each complete trial's validation accuracy (y) "
        "against its synaptic operations and its energy proxy per validation image (x, log scale; measured at its "
        "best epoch, as the study optimized them), colour by neuron model, marker by surrogate gradient. Ringed "
        "trials are Pareto-optimal: no other trial is at least as good in every objective and better in one; "
        "'snn-study best' exports exactly these. The energy proxy counts arithmetic only (Horowitz 2014, 45 nm: "
        "4.6 pJ a multiply-accumulate, 0.9 pJ an accumulate), not memory access: a proxy, not a measurement.",
    ),
}


def cost_sections(data: StudyData) -> list[Section]:
    """The cost figures of the report (a note where a figure has nothing to draw); the Pareto front only for a study
    of several objectives."""

    def section(key: str, figure: go.Figure | None = None, note: str | None = None) -> Section:
        title, text = DESCRIPTIONS[key]
        return Section(key, title, text, figure, note)

    records = cost_records(data)
    none = "no complete trial with cost metrics yet"
    sections = [section("cost_accuracy", cost_accuracy_figure(records, replicate_means(records))) if records
                else section("cost_accuracy", note=none),
                section("layer_spikes", layer_spikes_figure(layer_spike_records(records))) if records
                else section("layer_spikes", note=none),
                section("latency", latency_figure(records)) if records else section("latency", note=none)]
    objectives, kinds = study_objectives(data)
    if len(kinds) > 1:
        shown = [r for r in records if r["val_costs"] is not None]
        sections.append(section("pareto", pareto_figure(shown, objectives)) if shown
                        else section("pareto", note="no complete trial with validation costs yet"))
    return sections
