"""Samplers (``optuna.samplers``), all seeded.

``grid`` is not an Optuna sampler: it runs every combination of the categorical choices
exactly once by enqueueing each as a waiting trial (Optuna's queue is shared by every
worker, so none is run twice or skipped); numeric parameters inside a combination are
drawn by a seeded random sampler.

Every sampler here also runs a study of several objectives (``study.objectives``); ``nsga2``
(Optuna's NSGA-II) is made for them, and TPE, random, grid and GP take them as Optuna 5 does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import optuna


@dataclass(frozen=True)
class Sampler:
    """How a study chooses its trials: ``make(seed)`` builds the Optuna sampler, and a ``queued_grid``
    study runs each categorical combination once, as a queued trial."""

    make: Callable[[int], optuna.samplers.BaseSampler]
    queued_grid: bool = False


SAMPLERS: dict[str, Sampler] = {
    "tpe": Sampler(lambda seed: optuna.samplers.TPESampler(seed=seed)),
    # the combination comes from the queue; only the numeric parameters are sampled, at random
    "grid": Sampler(lambda seed: optuna.samplers.RandomSampler(seed=seed), queued_grid=True),
    "random": Sampler(lambda seed: optuna.samplers.RandomSampler(seed=seed)),
    "gp": Sampler(lambda seed: optuna.samplers.GPSampler(seed=seed)),
    "nsga2": Sampler(lambda seed: optuna.samplers.NSGAIISampler(seed=seed)),
}


def make_sampler(name: str, seed: int, worker: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler ``name``; each worker gets its own seed so that parallel workers do not propose twins."""
    return SAMPLERS[name].make(seed + 1000 * worker)
