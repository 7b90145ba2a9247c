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


#: what the seed adds per worker, so that parallel workers do not propose twins
WORKER_SEED_STRIDE = 1000
#: what the seed adds per trial a study already holds when a process loads it: a prime, so that no (worker, trials)
#: pair lands on another's seed for fewer than that many workers
RESUME_SEED_STRIDE = 1_000_003


def make_sampler(name: str, seed: int, worker: int = 0, resumed: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler ``name``; each worker gets its own seed so that parallel workers do not propose twins, and a
    process that loads a study already holding ``resumed`` trials gets another, so that it does not propose the
    first run's trials again (a seeded sampler in a new process starts its random stream afresh: TPE's and
    NSGA-II's first, random trials would be the same ones). A study run in one go draws what ``seed`` draws."""
    return SAMPLERS[name].make((seed + WORKER_SEED_STRIDE * worker + RESUME_SEED_STRIDE * resumed) % 2**32)
