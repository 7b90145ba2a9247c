"""What a study optimizes (``study.objectives``): validation accuracy, alone or beside cost metrics to minimize.

A study's first objective is always ``val_acc``; any further one is a cost metric of the trial's best
weights, counted on the *validation* set in the epoch's validation pass (``TrainResult.val_costs``),
so that a study never chooses by the test set. Optuna prunes trials of one objective only
(``Trial.report`` raises in a study of several), so a study of several objectives does not prune:
each trial trains until its last epoch or until early stopping by patience
(``training.early_stopping_patience``). Pruning on accuracy alone would cut exactly the cheap,
less accurate trials that make up one end of the Pareto front.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import optuna

from objectives import ConfigError


def _si(value: float) -> str:
    """``2.3M``: three significant digits and an SI prefix (k, M, G, T)."""
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{prefix}"
    return f"{value:.3g}"


@dataclass(frozen=True)
class ObjectiveMetric:
    """One metric a study may optimize: its direction, what it measures, and how a file name shows a value."""

    direction: Literal["maximize", "minimize"]
    label: str
    #: a value as part of a file name: ``val0.9512``, ``synops2.3M``
    short: Callable[[float], str]


#: the metrics ``study.objectives`` may name: accuracy, then cost metrics of ``objectives.CostMetrics`` (the
#: same names) on the validation set at the best epoch
OBJECTIVE_METRICS: dict[str, ObjectiveMetric] = {
    "val_acc": ObjectiveMetric("maximize", "validation accuracy", lambda v: f"val{v:.4f}"),
    "synops": ObjectiveMetric("minimize", "synaptic operations per inference (validation set)",
                              lambda v: f"synops{_si(v)}"),
    "effective_acs": ObjectiveMetric("minimize", "effective accumulates per inference (validation set)",
                                     lambda v: f"acs{_si(v)}"),
    "effective_macs": ObjectiveMetric("minimize", "effective multiply-accumulates per inference (validation set)",
                                      lambda v: f"macs{_si(v)}"),
    "energy_proxy_uj": ObjectiveMetric("minimize", "energy proxy per inference, µJ (validation set)",
                                       lambda v: f"energy{v:.3g}uJ"),
    "spikes_per_sample": ObjectiveMetric("minimize", "spikes per inference (validation set)",
                                         lambda v: f"spikes{_si(v)}"),
    "activation_sparsity": ObjectiveMetric("maximize", "activation sparsity (validation set)",
                                           lambda v: f"sparsity{v:.4f}"),
    "decision_step": ObjectiveMetric("minimize", "decision time step (validation set)", lambda v: f"step{v:g}"),
    "dense_synops": ObjectiveMetric("minimize", "dense synaptic operations per inference",
                                    lambda v: f"dense{_si(v)}"),
    "footprint_bytes": ObjectiveMetric("minimize", "footprint in bytes", lambda v: f"footprint{_si(v)}B"),
}
ACCURACY = "val_acc"
DEFAULT_OBJECTIVES = (ACCURACY,)


def parse_objectives(value: Any) -> tuple[str, ...]:
    """``study.objectives``: ``[val_acc]`` or ``[val_acc, <cost metric>, ...]`` (a name alone for one)."""
    names = [value] if isinstance(value, str) else value
    costs = ", ".join(n for n in OBJECTIVE_METRICS if n != ACCURACY)
    allowed = f"[{ACCURACY}] or [{ACCURACY}, then cost metrics to optimize beside it: {costs}]"
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) for n in names):
        raise ConfigError("study.objectives", value, f"expected a list: {allowed}")
    unknown = [n for n in names if n not in OBJECTIVE_METRICS]
    if unknown:
        raise ConfigError("study.objectives", unknown[0], f"unknown metric; allowed: {allowed}")
    if names[0] != ACCURACY or len(set(names)) != len(names):
        raise ConfigError("study.objectives", list(names), f"{ACCURACY} first, each metric once: {allowed}")
    return tuple(names)


def directions(names: Sequence[str]) -> list[Literal["maximize", "minimize"]]:
    """Optuna's directions of the objectives ``names``."""
    return [OBJECTIVE_METRICS[n].direction for n in names]


def objective_of(names: Sequence[str]) -> str:
    """What a study of the objectives ``names`` optimizes, as its fingerprint and messages say: ``maximize val_acc``."""
    return ", ".join(f"{d} {n}" for d, n in zip(directions(names), names))


def prunes(names: Sequence[str]) -> bool:
    """Whether a study of the objectives ``names`` prunes its trials: with one objective only (see the module)."""
    return len(names) == 1


def score(names: Sequence[str]) -> Callable[[Any], float | tuple[float, ...]]:
    """A trial's objective value(s) from its ``objectives.TrainResult``: the best validation accuracy, and
    for each cost metric its value on the validation set at that epoch."""

    def read(result: Any) -> float | tuple[float, ...]:
        values = tuple(result.val_acc if n == ACCURACY else float(getattr(result.val_costs, n)) for n in names)
        return values[0] if len(values) == 1 else values

    return read


def check_study(study: optuna.Study, names: Sequence[str]) -> None:
    """A study found in the storage must optimize ``names`` (as this config says) to be resumed: one line when
    not. A study without metric names (just created, or made before they were kept) is checked by its directions."""
    found = study.metric_names
    kept = [d.name.lower() for d in study.directions]
    if (list(found) if found is not None else kept) != (list(names) if found is not None else directions(names)):
        what = f"optimizes {list(found)}" if found is not None else f"has the directions {kept}"
        raise ConfigError("study.objectives", list(names), f"study {study.study_name!r} in the storage {what}; "
                          "keep its objectives or choose another study.name")


def short_name(names: Sequence[str], values: Sequence[float]) -> list[str]:
    """The parts of a file name that show a trial's trade-off: ``["val0.9512", "synops2.3M"]``."""
    return [OBJECTIVE_METRICS[n].short(v) for n, v in zip(names, values)]


def pruner_shown(settings: Any) -> str:
    """The pruner a study runs, as ``run`` names it: the configured one, or none for several objectives."""
    if prunes(settings.objectives):
        return settings.pruner.name
    return f"none (objectives {', '.join(settings.objectives)}: no pruning, early stopping by patience)"


def cost_line(costs: Any) -> str:
    """One line of what ``objectives.CostMetrics`` says a network costs per inference."""
    return (f"test costs per inference: {_si(costs.synops)} synaptic operations ({_si(costs.effective_acs)} ACs, "
            f"{_si(costs.effective_macs)} MACs), {costs.spikes_per_sample:.4g} spikes, energy proxy "
            f"{costs.energy_proxy_uj:.3g} µJ, {100 * costs.activation_sparsity:.1f} % of activations zero, "
            f"decision at step {costs.decision_step} of {costs.num_steps}")
