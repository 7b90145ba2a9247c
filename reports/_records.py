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


#: the states a figure tells apart, in the order its counts name them
STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
STATE_WORDS = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running",
               "WAITING": "waiting"}


def level_counts(trials: list[dict[str, Any]]) -> dict[str, dict[Any, dict[str, int]]]:
    """``{factor: {level: {state: trials}}}`` for every level of every factor that has a trial, whatever its state."""
    out: dict[str, dict[Any, dict[str, int]]] = {f: {} for f in COMBINATION}
    for r in trials:
        for factor in COMBINATION:
            counts = out[factor].setdefault(r[factor], dict.fromkeys(STATES, 0))
            counts[r["state"]] = counts.get(r["state"], 0) + 1
    return out


def count_text(counts: dict[str, int], sep: str = ", ") -> str:
    """``"2 complete, 3 pruned, 1 failed"``: the complete count always (0 too), other states when there are any."""
    return sep.join(f"{n} {STATE_WORDS.get(s, s.lower())}" for s, n in counts.items() if n or s == "COMPLETE")


def _best_epochs(epochs: list[dict[str, Any]]) -> dict[tuple[str, int], float]:
    """The best validation accuracy each trial reported in any epoch (a pruned trial's best before it was stopped)."""
    best: dict[tuple[str, int], float] = {}
    for e in epochs:
        key, value = (e["study"], e["number"]), e["val_acc"]
        if value is not None and (key not in best or value > best[key]):
            best[key] = value
    return best


def _accuracy(r: dict[str, Any], best: dict[tuple[str, int], float]) -> float | None:
    """A complete trial's value; any other trial's best validation accuracy before it stopped (``None``: no epoch)."""
    if r["state"] == "COMPLETE":
        return r["value"]
    return best.get((r["study"], r["number"]))


def curve_records(trials: list[dict[str, Any]], epochs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per trial, whatever its state: its combination, state and validation accuracy per epoch (empty
    lists for a trial that recorded no epoch, so that its neuron and backprop still get their panel)."""
    curves: dict[tuple[str, int], dict[str, Any]] = {
        (r["study"], r["number"]): {
            "study": r["study"],
            "number": r["number"],
            **{k: r[k] for k in COMBINATION},
            "combination": combination_label(r),
            "state": r["state"],
            "epochs": [],
            "val_acc": [],
        }
        for r in trials
    }
    for e in epochs:
        curve = curves.get((e["study"], e["number"]))
        if curve is not None and e["val_acc"] is not None:
            curve["epochs"].append(e["epoch"])
            curve["val_acc"].append(e["val_acc"])
    return list(curves.values())


def heatmap_records(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per summary row: a cell (``neuron``, ``surrogate``) of the ``backprop`` method's heatmap, with
    its best validation accuracy, the test accuracy of that best trial and its trials by state."""
    return [
        {
            "backprop": r["backprop"],
            "neuron": r["neuron"],
            "surrogate": r["surrogate"],
            "best_val_acc": r["best_val_acc"],
            "best_test_acc": r.get("best_test_acc"),
            "finished": r["finished"],
            "pruned": r["pruned"],
            "failed": r.get("failed") or 0,
            "trials": r["trials"],
        }
        for r in summary
    ]


def distribution_records(trials: list[dict[str, Any]], epochs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every trial once per factor: ``{factor, level, study, number, state, val_acc}``.

    ``val_acc`` is a complete trial's validation accuracy, and for a pruned (failed, running) trial the best
    it reached before it stopped; ``None`` for a trial that recorded no epoch, which is still counted in its level.
    """
    best = _best_epochs(epochs)
    return [{"factor": factor, "level": r[factor], "study": r["study"], "number": r["number"], "state": r["state"],
             "val_acc": _accuracy(r, best)}
            for factor in COMBINATION for r in trials]


def spike_rate_records(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The spike rate of each spiking layer of every trial: ``{neuron, layer, study, number, state, spike_rate}``.

    A complete trial's rates are those of its best epoch, any other trial's those of its last recorded epoch; a
    trial with no rates gives one record with ``layer`` and ``spike_rate`` ``None``, so its neuron still counts.
    """
    out = []
    for r in trials:
        head = {"neuron": r["neuron"], "study": r["study"], "number": r["number"], "state": r["state"]}
        rates = [(column[len("spike_rate_"):], value) for column, value in r.items()
                 if column.startswith("spike_rate_") and value is not None]
        out += [{**head, "layer": layer, "spike_rate": value} for layer, value in rates] or [
            {**head, "layer": None, "spike_rate": None}]
    return out


def history_records(trials: list[dict[str, Any]], epochs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every trial that started, in the order trials started: ``{order, study, number, state, <combination>,
    val_acc, best_so_far}``; ``val_acc`` as in :func:`distribution_records`, ``best_so_far`` the best complete
    trial's value up to this one (``None`` before the first)."""
    best = _best_epochs(epochs)
    started = sorted((r for r in trials if r["state"] != "WAITING"),
                     key=lambda r: (r.get("datetime_start") is None, r.get("datetime_start") or "", r["study"],
                                    r["number"]))
    out, so_far = [], None
    for i, r in enumerate(started):
        if r["state"] == "COMPLETE" and r["value"] is not None:
            so_far = r["value"] if so_far is None else max(so_far, r["value"])
        out.append({"order": i, "study": r["study"], "number": r["number"], "state": r["state"],
                    **{k: r[k] for k in COMBINATION}, "val_acc": _accuracy(r, best), "best_so_far": so_far})
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
