"""What every registry entry is, without its implementation: names, parameters and rules.

Each pluggable family has one registry of implementations (``NEURONS``,
``SURROGATES``, ... in the modules that import torch) and, here, one table of
specs with the same keys: the names every layer validates against, each neuron's
parameters and the rules they obey, each surrogate's shape parameters, what a loss
needs of a window. Config validation, the search space, ``--help`` and the reports
read these tables, so none of them loads torch. A test checks that both tables of a
family have the same keys.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: ``(field, why)`` when a neuron's parameters cannot work, else ``None``
Problem = tuple[str, str] | None

RESET_MECHANISMS = ("subtract", "zero", "none")


def _no_rule(alpha: float, beta: float) -> Problem:
    return None


def _alpha_rule(alpha: float, beta: float) -> Problem:
    if not alpha > beta:
        return "alpha", f"the alpha neuron needs alpha > beta (beta={beta})"
    if not 0 < beta < 1:
        return "beta", "the alpha neuron needs 0 < beta < 1 (log(beta) divides)"
    return None


def _lapicque_rule(alpha: float, beta: float) -> Problem:
    if not 1 / math.e < beta < 1:
        return "beta", "the lapicque neuron needs 1/e < beta < 1 (its decay per step is 1 - log(1/beta))"
    return None


@dataclass(frozen=True)
class NeuronSpec:
    """A neuron model: the config fields it reads (besides ``threshold``), its default reset and its rule."""

    name: str
    params: tuple[str, ...]
    default_reset: str = "subtract"
    rule: Callable[[float, float], Problem] = _no_rule

    def check(self, alpha: float, beta: float) -> Problem:
        """``(field, why)`` when ``alpha`` and ``beta`` cannot work for this neuron, else ``None``."""
        return self.rule(alpha, beta)


NEURON_SPECS: dict[str, NeuronSpec] = {
    s.name: s
    for s in (
        NeuronSpec("alpha", ("alpha", "beta"), default_reset="zero", rule=_alpha_rule),
        NeuronSpec("leaky", ("beta",)),
        NeuronSpec("synaptic", ("alpha", "beta")),
        NeuronSpec("lapicque", ("beta",), rule=_lapicque_rule),
    )
}


@dataclass(frozen=True)
class SurrogateSpec:
    """A surrogate gradient: its shape parameters with their defaults."""

    name: str
    params: Mapping[str, float] = field(default_factory=dict)


SURROGATE_SPECS: dict[str, SurrogateSpec] = {
    s.name: s
    for s in (
        SurrogateSpec("atan", {"alpha": 2.0}),
        SurrogateSpec("fast_sigmoid", {"slope": 25.0}),
        # snntorch's slope 25 gives 25 e^-25 ~ 3e-10 one unit below threshold: from the silent
        # start of a fresh network nothing learns (MNIST: 9.8 % after an epoch; slope 5: 95.5 %)
        SurrogateSpec("sigmoid", {"slope": 5.0}),
        # B = 2: gradient for membranes above U_thr - 2 (MNIST, one epoch: 96.0 %; B = 1: 86.4 %)
        SurrogateSpec("sparse_fast_sigmoid", {"slope": 25.0, "B": 2.0}),
        SurrogateSpec("spike_rate_escape", {"beta": 1.0, "slope": 25.0}),
        SurrogateSpec("stochastic_spike_operator", {"mean": 0.0, "variance": 0.2}),
        SurrogateSpec("straight_through_estimator", {}),
        # half-width 2: a half-width of 1 leaves every membrane below 0 without gradient
        # (MNIST, one epoch: 96.0 %; alpha = 1: 77.3 %)
        SurrogateSpec("triangular", {"alpha": 0.5}),
    )
}
#: every surrogate shape parameter name, sorted
SURROGATE_PARAMS: tuple[str, ...] = tuple(sorted({p for s in SURROGATE_SPECS.values() for p in s.params}))


@dataclass(frozen=True)
class LossSpec:
    """A loss: whether it reads the output ``spikes`` or ``mem``, and what it needs of a window."""

    name: str
    on: str
    #: whether a CUDA graph can record it (no operation that waits for the GPU's answer)
    graphable: bool = True
    #: the fewest time steps a window (one loss, one optimizer step) must have for it to mean anything
    min_window: int = 1


LOSS_SPECS: dict[str, LossSpec] = {
    s.name: s
    for s in (
        LossSpec("ce_rate", "spikes"),
        LossSpec("ce_count", "spikes"),
        # its targets are whole spike counts of the window, int(0.8 * steps) and int(0.2 * steps):
        # in a one-step window (rtrl) both are 0 and the loss only teaches silence; they are built
        # with boolean-mask assignment, which asks the GPU how many elements match: no CUDA graph
        LossSpec("mse_count", "spikes", graphable=False, min_window=2),
        LossSpec("ce_max_membrane", "mem"),
    )
}


@dataclass(frozen=True)
class EncodingSpec:
    """An input encoding; ``static`` ones feed the same tensor at every step (the first convolution may run once)."""

    name: str
    static: bool


ENCODING_SPECS: dict[str, EncodingSpec] = {
    s.name: s
    for s in (
        EncodingSpec("direct", static=True),
        EncodingSpec("rate", static=False),
    )
}

OPTIMIZER_NAMES = ("adamax", "adam", "adamw", "sgd")
DATASET_NAMES = ("mnist", "fashion_mnist", "synthetic")
#: each dataset's image height and width: a config whose conv blocks would shrink them to nothing is refused
#: when it is read, not when a trial builds its model (tests/objectives/test_specs.py checks them against the data)
IMAGE_SIZES: dict[str, tuple[int, int]] = {"mnist": (28, 28), "fashion_mnist": (28, 28), "synthetic": (28, 28)}
#: ``fast`` (layer by layer over time) or ``snntorch`` (snntorch's classes, step by step: the reference)
ENGINES = ("fast", "snntorch")

#: backprop method -> time steps per optimizer step, given the run config. The three are one
#: mechanism with different window lengths, as snntorch defines them: ``BPTT`` is ``TBPTT`` with
#: ``K = num_steps`` and ``RTRL`` is ``TBPTT`` with ``K = 1``.
BACKPROPS: dict[str, Callable[[Any], int]] = {
    "bptt": lambda cfg: cfg.model.num_steps,
    "tbptt": lambda cfg: cfg.training.tbptt_window,
    "rtrl": lambda cfg: 1,
}
