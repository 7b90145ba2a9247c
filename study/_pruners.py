"""Pruners (``optuna.pruners``), each optionally wrapped in Optuna's ``PatientPruner``.

A trial reports its validation accuracy after every epoch; the pruner compares
it with other trials at the same epoch and stops the trial when it is behind.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import optuna

from objectives import ConfigError, coerce


@dataclass(frozen=True)
class PrunerConfig:
    """``study.pruner``: a name, or a mapping with the name and its settings."""

    name: str = "median"
    #: epochs every trial runs before it may be pruned (median, percentile); epochs count from 1,
    #: so 0 and 1 both allow pruning after the first epoch
    n_warmup_steps: int = 2
    #: trials that run unpruned before pruning starts (median, percentile)
    n_startup_trials: int = 5
    #: keep a trial only while its best is in the top ``percentile`` % of the finished trials' values
    #: at the same epoch (percentile): 25 prunes all but the top quarter, 50 is the median pruner
    percentile: float = 25.0
    #: epochs before the first rung (successive_halving, hyperband)
    min_resource: int = 1
    reduction_factor: int = 3
    #: wrap in PatientPruner: prune only when the best of the last ``patience`` + 1 epochs is below
    #: the best before them (and the wrapped pruner agrees). A trial that stays level, e.g. stuck at
    #: chance, is never below, so patience never prunes it: leave it out to prune those.
    patience: int | None = None

    @classmethod
    def from_value(cls, value: Any) -> PrunerConfig:
        """From ``"median"`` or ``{name: median, n_warmup_steps: 2, ...}``."""
        if isinstance(value, str):
            value = {"name": value}
        if not isinstance(value, dict):
            raise ConfigError("study.pruner", value, f"expected a name ({', '.join(PRUNERS)}) or a mapping")
        names = {f.name: f for f in fields(cls)}
        for key, v in value.items():
            if key not in names:
                raise ConfigError(f"study.pruner.{key}", v, f"unknown field; allowed: {', '.join(names)}")
        cfg = cls(**value)
        if cfg.name not in PRUNERS:
            raise ConfigError("study.pruner.name", cfg.name, f"allowed: {', '.join(PRUNERS)}")
        for key in ("n_warmup_steps", "n_startup_trials", "min_resource", "reduction_factor", "patience"):
            v = getattr(cfg, key)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise ConfigError(f"study.pruner.{key}", v, "expected a non-negative integer")
        if cfg.reduction_factor < 2:
            raise ConfigError("study.pruner.reduction_factor", cfg.reduction_factor, "must be >= 2")
        if cfg.min_resource < 1:  # Optuna's successive halving and hyperband count epochs from 1
            raise ConfigError("study.pruner.min_resource", cfg.min_resource, "must be >= 1")
        if not 0 < coerce("study.pruner.percentile", cfg.percentile, float) < 100:
            raise ConfigError("study.pruner.percentile", cfg.percentile, "must be within (0, 100)")
        return cfg


PRUNERS: dict[str, Callable[[PrunerConfig, int], optuna.pruners.BasePruner]] = {
    "median": lambda c, epochs: optuna.pruners.MedianPruner(
        n_startup_trials=c.n_startup_trials, n_warmup_steps=c.n_warmup_steps
    ),
    "percentile": lambda c, epochs: optuna.pruners.PercentilePruner(
        c.percentile, n_startup_trials=c.n_startup_trials, n_warmup_steps=c.n_warmup_steps
    ),
    "successive_halving": lambda c, epochs: optuna.pruners.SuccessiveHalvingPruner(
        min_resource=c.min_resource, reduction_factor=c.reduction_factor
    ),
    "hyperband": lambda c, epochs: optuna.pruners.HyperbandPruner(
        min_resource=c.min_resource, max_resource=epochs, reduction_factor=c.reduction_factor
    ),
    "none": lambda c, epochs: optuna.pruners.NopPruner(),
}


def make_pruner(cfg: PrunerConfig, max_epochs: int) -> optuna.pruners.BasePruner:
    """The configured pruner for trials of at most ``max_epochs`` epochs."""
    pruner = PRUNERS[cfg.name](cfg, max_epochs)
    if cfg.patience is not None:
        with warnings.catch_warnings():
            # experimental since Optuna 2.8 and unchanged since; the warning would repeat in every worker
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            pruner = optuna.pruners.PatientPruner(pruner, patience=cfg.patience)
    return pruner
