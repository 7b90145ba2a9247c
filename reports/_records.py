"""Figure data as plain records, extracted from the table rows before anything is drawn.

Each function takes rows of :mod:`reports._tables` (or rows read back from its CSV
files) and returns a list of dicts, one per line, box point or heatmap cell, so the
numbers a figure shows can be checked without parsing HTML.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from objectives import COMBINATION


def combination_label(row: dict[str, Any]) -> str:
    """``"leaky / atan / bptt"``."""
    return " / ".join(str(row[k]) for k in COMBINATION)


def curve_records(trials: list[dict[str, Any]], epochs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per trial with recorded epochs: its combination, state and validation accuracy per epoch."""
    state = {(r["study"], r["number"]): r for r in trials}
    curves: dict[tuple[str, int], dict[str, Any]] = {}
    for e in epochs:
        key = (e["study"], e["number"])
        trial = state.get(key)
        if trial is None or e["val_acc"] is None:
            continue
        if key not in curves:
            curves[key] = {
                "study": key[0],
                "number": key[1],
                **{k: trial[k] for k in COMBINATION},
                "combination": combination_label(trial),
                "state": trial["state"],
                "epochs": [],
                "val_acc": [],
            }
        curves[key]["epochs"].append(e["epoch"])
        curves[key]["val_acc"].append(e["val_acc"])
    return list(curves.values())


def heatmap_records(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per summary row: a cell (``neuron``, ``surrogate``) of the ``backprop`` method's heatmap."""
    return [
        {
            "backprop": r["backprop"],
            "neuron": r["neuron"],
            "surrogate": r["surrogate"],
            "best_val_acc": r["best_val_acc"],
            "finished": r["finished"],
            "pruned": r["pruned"],
            "trials": r["trials"],
        }
        for r in summary
    ]


def distribution_records(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The validation accuracy of every complete trial, once per factor: ``{factor, level, study, number, val_acc}``."""
    out = []
    for factor in COMBINATION:
        for r in trials:
            if r["state"] == "COMPLETE" and r["value"] is not None:
                out.append({"factor": factor, "level": r[factor], "study": r["study"], "number": r["number"],
                            "val_acc": r["value"]})
    return out


def spike_rate_records(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The spike rate of each spiking layer of every complete trial: ``{neuron, layer, study, number, spike_rate}``."""
    out = []
    for r in trials:
        if r["state"] != "COMPLETE":
            continue
        for column, value in r.items():
            if column.startswith("spike_rate_") and value is not None:
                out.append({"neuron": r["neuron"], "layer": column[len("spike_rate_"):], "study": r["study"],
                            "number": r["number"], "spike_rate": value})
    return out


def best_by_factor(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each factor and level, the best validation accuracy over its combinations (summary rows only)."""
    best: dict[tuple[str, str], float | None] = defaultdict(lambda: None)
    for factor in COMBINATION:
        for r in summary:
            value, key = r["best_val_acc"], (factor, r[factor])
            if value is not None and (best[key] is None or value > best[key]):
                best[key] = value
            best.setdefault(key, None)
    return [{"factor": f, "level": level, "best_val_acc": v} for (f, level), v in best.items()]
