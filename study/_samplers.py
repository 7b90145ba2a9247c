"""Samplers (``optuna.samplers``), all seeded.

``grid`` runs every combination of the categorical choices exactly once: the
runner enqueues each combination as a waiting trial (Optuna's queue is shared by
every worker, so none is run twice or skipped) and numeric parameters inside a
combination are drawn by a seeded random sampler.
"""

from __future__ import annotations

from collections.abc import Callable

import optuna

SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),
    "grid": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    "gp": lambda seed: optuna.samplers.GPSampler(seed=seed),
}


def make_sampler(name: str, seed: int, worker: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler ``name``; each worker gets its own seed so that parallel workers do not propose twins."""
    return SAMPLERS[name](seed + 1000 * worker)
