"""The cost columns of the report's tables, and ``latency.csv``.

Each complete trial keeps the cost metrics of its best weights on the test set
(``TrialRecord.costs``, ``objectives.CostMetrics.to_dict()``), and every epoch those on the
validation set (the per-epoch table's ``val_costs``). The tables show the test set's (the same
pass as the test accuracy) and, with a ``val_`` prefix, the validation set's at the best epoch
(what a study of several objectives optimizes); in a study of several objectives, whether a
trial is on the Pareto front. The figures are :mod:`reports._cost_figures`.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import optuna

from objectives import COMBINATION, TrialRecord, layer_names

from ._load import StudyData

#: trials.csv's cost columns: the test set's metrics of the best weights (``cost_samples``: images counted)
COST_COLUMNS = ("synops", "effective_macs", "effective_acs", "dense_synops", "energy_proxy_uj", "spikes_per_sample",
                "activation_sparsity", "footprint_bytes", "connection_sparsity", "decision_step", "cost_samples")
#: per spiking layer: ``<metric>_<layer>`` (``synops_<layer>``: the operations into that layer)
LAYER_COLUMNS = ("spikes_per_sample", "activation_sparsity", "dead_fraction", "saturated_fraction", "synops")
#: the validation set's metrics at the best epoch (what a study of several objectives optimizes)
VAL_METRICS = ("synops", "energy_proxy_uj", "spikes_per_sample", "decision_step")
VAL_COLUMNS = tuple(f"val_{m}" for m in VAL_METRICS)
#: summary.csv: the best trial's costs, and the means over a combination's complete trials
SUMMARY_METRICS = ("synops", "energy_proxy_uj", "spikes_per_sample", "decision_step")
SUMMARY_COST_COLUMNS = (*(f"best_{m}" for m in SUMMARY_METRICS), *(f"mean_{m}" for m in SUMMARY_METRICS))
LATENCY_COLUMNS = ("study", "number", *COMBINATION, "step", "accuracy")
_CELL = {"synops": "synops", "effective_macs": "effective_macs", "effective_acs": "effective_acs",
         "dense_synops": "dense_synops", "energy_proxy_uj": "energy_proxy_uj", "spikes_per_sample": "spikes_per_sample",
         "activation_sparsity": "activation_sparsity", "footprint_bytes": "footprint_bytes",
         "connection_sparsity": "connection_sparsity", "decision_step": "decision_step", "cost_samples": "n_samples"}
_LAYER = {"spikes_per_sample": "layer_spikes_per_sample", "activation_sparsity": "layer_activation_sparsity",
          "dead_fraction": "layer_dead_fraction", "saturated_fraction": "layer_saturated_fraction"}


def study_objectives(data: StudyData) -> tuple[list[str], list[str]]:
    """The objectives the study of ``data`` optimizes and their directions (``maximize``/``minimize``);
    ``["val_acc"]`` for a study of one that does not name it."""
    study = optuna.load_study(study_name=data.study_names[0], storage=data.storage)
    kinds = [d.name.lower() for d in study.directions]
    unnamed = ["val_acc"] if len(kinds) == 1 else [f"objective_{i}" for i in range(len(kinds))]
    names = list(study.metric_names or unnamed)
    return names, kinds


def pareto_front(values: Sequence[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """The indices of ``values`` (one tuple of objective values each) that no other one dominates: at least as
    good in every objective and better in one (Optuna's ``Study.best_trials``)."""
    signs = [1.0 if d == "maximize" else -1.0 for d in directions]
    gains = [[s * v for s, v in zip(signs, vs)] for vs in values]

    def dominated(a: list[float]) -> bool:
        return any(all(x >= y for x, y in zip(b, a)) and any(x > y for x, y in zip(b, a)) for b in gains)

    return [i for i, g in enumerate(gains) if not dominated(g)]


def pareto_flags(data: StudyData) -> dict[tuple[str, int], bool] | None:
    """For a study of several objectives, whether each complete trial is on the Pareto front of all the trials of
    ``data`` (its per-combination studies together); ``None`` for a study of one objective."""
    _, kinds = study_objectives(data)
    if len(kinds) < 2:
        return None
    done = [r for r in data.records if r.state == "COMPLETE" and len(r.values) == len(kinds)]
    front = set(pareto_front([r.values for r in done], kinds))
    return {(r.study, r.number): i in front for i, r in enumerate(done)}


def best_epoch_costs(data: StudyData) -> dict[tuple[str, int], Mapping[str, Any]]:
    """Each trial's validation costs at its best epoch (the per-epoch table's ``val_costs``), where recorded. A trial
    without a result (pruned, running) is taken at its best epoch so far: its highest validation accuracy, the
    first such epoch on a tie, as training chooses."""
    chosen = {(r.study, r.number): r.best_epoch for r in data.records if r.best_epoch is not None}
    best: dict[tuple[str, int], dict[str, Any]] = {}
    for e in data.epochs:
        key = (e["study_name"], e["trial_number"])
        if not e.get("val_costs") or (key in chosen and chosen[key] != e["epoch"]):
            continue
        if key not in best or (e["val_acc"] or 0) > (best[key]["val_acc"] or 0):
            best[key] = e
    return {key: e["val_costs"] for key, e in best.items()}


def cost_cells(record: TrialRecord, val_costs: Mapping[str, Any] | None, pareto: bool | None) -> dict[str, Any]:
    """The cost cells of one trial's row of trials.csv (empty where the trial has none)."""
    costs = record.costs or {}
    cells: dict[str, Any] = {column: costs.get(key) for column, key in _CELL.items()}
    layers = costs.get("layers") or []
    for i, layer in enumerate(layers):
        for column, key in _LAYER.items():
            cells[f"{column}_{layer}"] = costs[key][i]
        cells[f"synops_{layer}"] = costs["layer_effective_macs"][i] + costs["layer_effective_acs"][i]
    for metric in VAL_METRICS:
        cells[f"val_{metric}"] = (val_costs or {}).get(metric)
    if pareto is not None:
        cells["pareto_optimal"] = pareto
    return cells


def cost_columns(records: Sequence[TrialRecord], multi_objective: bool) -> list[str]:
    """trials.csv's cost columns for ``records``: the totals, each layer's (layers of the deepest network seen),
    the validation set's, and ``pareto_optimal`` in a study of several objectives."""
    most = max((len((r.costs or {}).get("layers") or ()) for r in records), default=0)
    layers = [f"{c}_{name}" for c in LAYER_COLUMNS for name in layer_names(most)] if most else []
    return [*COST_COLUMNS, *layers, *VAL_COLUMNS, *(["pareto_optimal"] if multi_objective else [])]


def cost_summary(rows: Sequence[dict[str, Any]], best: dict[str, Any] | None) -> dict[str, Any]:
    """summary.csv's cost cells of one combination: its best trial's costs and the means over its complete
    trials (of trials.csv's rows)."""
    done = [r for r in rows if r["state"] == "COMPLETE"]
    out: dict[str, Any] = {}
    for metric in SUMMARY_METRICS:
        values = [r[metric] for r in done if r.get(metric) is not None]
        out[f"best_{metric}"] = best.get(metric) if best else None
        out[f"mean_{metric}"] = statistics.fmean(values) if values else None
    return out


def epoch_cost_cells(epoch: Mapping[str, Any]) -> dict[str, Any]:
    """epochs.csv's validation costs of one epoch."""
    costs = epoch.get("val_costs") or {}
    return {f"val_{m}": costs.get(m) for m in VAL_METRICS}


def latency_rows(data: StudyData) -> list[dict[str, Any]]:
    """latency.csv: for each complete trial with costs, its test accuracy when the output is read after each
    time step (``accuracy`` at ``step`` 1 ... T)."""
    out = []
    for r in data.records:
        if r.state != "COMPLETE" or not r.costs:
            continue
        for step, acc in enumerate(r.costs["accuracy_by_step"], 1):
            out.append({"study": r.study, "number": r.number, **r.combination.as_dict(), "step": step,
                        "accuracy": acc})
    return out
