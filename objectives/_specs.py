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
#: ``model.gain``: ``matched`` scales each neuron's input current by the inverse of its DC gain, so that a
#: constant input ``I`` settles every neuron's membrane at ``I`` (one threshold means the same drive for all);
#: ``raw`` keeps snntorch's arithmetic (the input current as it comes)
GAINS = ("matched", "raw")


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


# The DC gains: the membrane a constant input current I settles at, over I, without spikes. Each
# neuron's file derives its own (objectives/_neurons/<name>.py); a test checks them by simulation.


def _leaky_gain(alpha: float, beta: float) -> float:
    return math.inf if beta >= 1 else 1 / (1 - beta)


def _synaptic_gain(alpha: float, beta: float) -> float:
    return math.inf if alpha >= 1 or beta >= 1 else 1 / ((1 - alpha) * (1 - beta))


def _alpha_gain(alpha: float, beta: float) -> float:
    if alpha >= 1:
        return math.inf
    tau = math.log(alpha) / (math.log(beta) - math.log(alpha)) + 1  # as snntorch.Alpha computes it
    return tau * (1 / (1 - alpha) - 1 / (1 - beta))


def _lapicque_gain(alpha: float, beta: float) -> float:
    return 1.0  # input ln(1/beta) I per step, leak ln(1/beta) U per step: they balance at U = I


@dataclass(frozen=True)
class NeuronSpec:
    """A neuron model: the config fields it reads (besides ``threshold``), its default reset and its rule."""

    name: str
    params: tuple[str, ...]
    #: ``(alpha, beta) -> G``: the membrane a constant input ``I`` settles at is ``G I`` (``inf``: it never settles)
    dc_gain: Callable[[float, float], float]
    default_reset: str = "subtract"
    rule: Callable[[float, float], Problem] = _no_rule
    #: time steps from an input current to the first membrane it moves (``dU[t]/dI[t-delay] != 0``)
    delay: int = 0

    def check(self, alpha: float, beta: float, gain: str = "raw") -> Problem:
        """``(field, why)`` when ``alpha`` and ``beta`` cannot work for this neuron (under ``model.gain``
        ``gain``), else ``None``."""
        problem = self.rule(alpha, beta)
        if problem is None and gain == "matched" and not math.isfinite(self.dc_gain(alpha, beta)):
            name = "alpha" if "alpha" in self.params and alpha >= 1 else "beta"
            return name, (
                f"model.gain matched needs {name} < 1: at {name} = 1 the {self.name} neuron integrates without "
                "leak and no finite gain matches it (or use model.gain raw)"
            )
        return problem

    def input_scale(self, alpha: float, beta: float, gain: str) -> float:
        """What the input current is multiplied by under ``model.gain`` ``gain``: ``1 / G`` when matched, else 1."""
        return 1 / self.dc_gain(alpha, beta) if gain == "matched" else 1.0

    def min_window(self, spiking_layers: int) -> int:
        """The fewest time steps a truncation window needs for a network of ``spiking_layers`` layers of this
        neuron to give its first layer's weights any gradient: an input reaches the output ``delay`` steps
        later per layer, and the loss must see that output within the window (``layers * delay + 1``)."""
        return spiking_layers * self.delay + 1


NEURON_SPECS: dict[str, NeuronSpec] = {
    s.name: s
    for s in (
        # its membrane tau (E - N) answers an input only from the next step on (E and N both take it at once)
        NeuronSpec("alpha", ("alpha", "beta"), _alpha_gain, default_reset="zero", rule=_alpha_rule, delay=1),
        NeuronSpec("leaky", ("beta",), _leaky_gain),
        NeuronSpec("synaptic", ("alpha", "beta"), _synaptic_gain),
        NeuronSpec("lapicque", ("beta",), _lapicque_gain, rule=_lapicque_rule),
    )
}


#: ``model.surrogate_scale``: ``normalized`` builds every surrogate with a width (:attr:`SurrogateSpec.width`) at
#: derivative 1 at the threshold and area ``2 w`` under it, ``w`` = ``model.surrogate_width``: the half-width of
#: the rectangle of height 1 with the same area (a box of half-width ``w`` is the clipped straight-through
#: estimator at window ``w``), so surrogates differ in shape only; ``raw`` takes the shape parameters as given
#: (snntorch's scales). At ``w = 1/2`` each is the derivative of a step from 0 to 1 with slope 1 at the threshold.
SURROGATE_SCALES = ("normalized", "raw")


@dataclass(frozen=True)
class SurrogateSpec:
    """A surrogate gradient: its shape parameters with their (raw-scale) defaults, and how the normalized
    family sets them.

    ``width(w)`` gives the shape parameters whose derivative, divided by its peak, has area ``2 w``, and
    ``peak(**params)`` the derivative's height at the threshold for given parameters: the normalized
    surrogate is the raw one with ``width(w)``, divided by its peak. ``width`` is ``None`` for a surrogate
    with no width to set (it is the same under either scale).
    """

    name: str
    params: Mapping[str, float] = field(default_factory=dict)
    width: Callable[[float], dict[str, float]] | None = None
    peak: Callable[..., float] = lambda **params: 1.0
    #: whether its forward pass draws the spike (a probability of ``U - U_thr``) instead of the Heaviside step
    stochastic: bool = False
    #: ``(params, width) -> why`` when the surrogate's free parameters cannot work (``width``: the normalized
    #: scale's, ``None`` under the raw scale), else ``None``
    rule: Callable[[Mapping[str, float], float | None], str | None] = lambda params, width: None

    @property
    def width_params(self) -> tuple[str, ...]:
        """The shape parameters the width sets under the normalized scale."""
        return tuple(self.width(1.0)) if self.width is not None else ()

    def free(self, scale: str) -> dict[str, float]:
        """The parameters a config may set under ``model.surrogate_scale`` ``scale``, with their defaults."""
        fixed = self.width_params if scale == "normalized" else ()
        return {k: v for k, v in self.params.items() if k not in fixed}


def _sparse_rule(params: Mapping[str, float], width: float | None) -> str | None:
    if width is not None and params["B"] <= width:
        return f"must be > model.surrogate_width ({width}): below U_thr - B the gradient is cut, within the width"
    return None


def _escape_rule(params: Mapping[str, float], width: float | None) -> str | None:
    if not params["noise"] > 0:
        return "must be > 0 (the escape function's width; a spike is drawn with probability sigmoid(2 x / noise))"
    return None


SURROGATE_SPECS: dict[str, SurrogateSpec] = {
    s.name: s
    for s in (
        # (alpha/2) / (1 + (pi alpha x / 2)^2): peak alpha / 2, area 1; divided by its peak, area 2 / alpha
        SurrogateSpec("atan", {"alpha": 2.0}, width=lambda w: {"alpha": 1 / w}, peak=lambda alpha: alpha / 2),
        # 1 / (1 + k|x|)^2: peak 1, area 2 / k
        SurrogateSpec("fast_sigmoid", {"slope": 25.0}, width=lambda w: {"slope": 1 / w}),
        # k s (1 - s), s = sigmoid(kx): peak k / 4, area 1; divided by its peak, area 4 / k.
        # Raw scale: snntorch's slope 25 gives 25 e^-25 ~ 3e-10 one unit below threshold, and from the
        # silent start of a fresh network nothing learns (validation 10.00 % after one epoch, one seed:
        # benchmarks/README.md); 5 reaches that far. Not re-chosen since: the normalized scale is the default.
        SurrogateSpec("sigmoid", {"slope": 5.0}, width=lambda w: {"slope": 2 / w}, peak=lambda slope: slope / 4),
        # the fast sigmoid's slope at the same width, kept for membranes above U_thr - B only (its area is the fast
        # sigmoid's less the cut tail, 1 / (k (1 + k B))). B = 2 rather than snntorch's 1, which cuts the
        # gradient of every membrane more than 1 below threshold (validation 86.10 % after one epoch at B = 1,
        # one seed: benchmarks/README.md); B stays a parameter under the normalized scale
        SurrogateSpec("sparse_fast_sigmoid", {"slope": 25.0, "B": 2.0}, width=lambda w: {"slope": 1 / w},
                      rule=_sparse_rule),
        # k exp(-beta |x|): peak k, area 2 k / beta
        SurrogateSpec("spike_rate_escape", {"beta": 1.0, "slope": 25.0},
                      width=lambda w: {"beta": 1 / w, "slope": 1.0}, peak=lambda beta, slope: slope),
        # 1 above threshold, noise below: no width to set
        SurrogateSpec("stochastic_spike_operator", {"mean": 0.0, "variance": 0.2}),
        # 1 everywhere: no width to set (clipped_straight_through has one)
        SurrogateSpec("straight_through_estimator", {}),
        # alpha max(0, 1 - alpha |x|): peak alpha, area 1; divided by its peak, a triangle of half-base 1 / alpha and
        # area 1 / alpha. Raw scale: half-base 2 (alpha 0.5) rather than 1, which leaves every membrane below 0
        # without gradient (validation 76.88 % after one epoch at alpha 1, one seed: benchmarks/README.md). Not
        # re-chosen since: normalized is the default.
        SurrogateSpec("triangular", {"alpha": 0.5}, width=lambda w: {"alpha": 1 / (2 * w)}, peak=lambda alpha: alpha),
        # 1 where |x| <= window, else 0: peak 1, area 2 window; raw window 1 as binarized networks use it
        SurrogateSpec("clipped_straight_through", {"window": 1.0}, width=lambda w: {"window": w}),
        # backward: k s (1 - s), s = sigmoid(kx) (as ``sigmoid``); forward: a spike with probability
        # sigmoid(2 x / noise), the escape function whose derivative, over its peak, has area 2 noise. At
        # noise = 2 / slope (raw) or noise = model.surrogate_width (normalized) the backward is the forward's
        # derivative (normalized: over its peak), Gygax & Zenke's matched case. Raw slope 4: peak 1, as the fast
        # sigmoid's (not chosen by accuracy). noise 0.05 chosen on MNIST validation (one epoch, 10,000 images,
        # 3 seeds, width 0.75): 94.62 % against 94.43 % at 0.1 and 68.51 % at the matched 0.75 (benchmarks/README.md)
        SurrogateSpec("escape_noise", {"slope": 4.0, "noise": 0.05}, width=lambda w: {"slope": 2 / w},
                      peak=lambda slope, noise: slope / 4, stochastic=True, rule=_escape_rule),
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

#: backprop method -> time steps per truncation window, given the run config. The three are one
#: mechanism with different window lengths, as snntorch defines them: ``BPTT`` is ``TBPTT`` with
#: ``K = num_steps`` and ``RTRL`` is ``TBPTT`` with ``K = 1``. ``rtrl`` keeps snntorch's name: it is
#: truncated BPTT with a one-step window, not Williams and Zipser's real-time recurrent learning
#: (which carries the state's sensitivities forward in time and truncates nothing).
BACKPROPS: dict[str, Callable[[Any], int]] = {
    "bptt": lambda cfg: cfg.model.num_steps,
    "tbptt": lambda cfg: cfg.training.tbptt_window,
    "rtrl": lambda cfg: 1,
}
#: the field that sets each method's window length (what a too-short window is blamed on)
BACKPROP_WINDOW_FIELD: dict[str, str] = {
    "bptt": "model.num_steps",
    "tbptt": "training.tbptt_window",
    "rtrl": "training.backprop",
}
#: what each backprop method is, in one line (``--help``, the README)
BACKPROP_HELP: dict[str, str] = {
    "bptt": "backprop through all time steps of a batch",
    "tbptt": "truncated BPTT: windows of training.tbptt_window steps, the state carried forward detached",
    "rtrl": "truncated BPTT with a one-step window (snntorch's RTRL), not forward-mode real-time recurrent learning",
}
#: ``training.step_every``: ``batch`` sums the gradients of a batch's windows into one optimizer step, so
#: every backprop method makes one update per batch; ``window`` steps after every window (snntorch's
#: ``TBPTT``/``RTRL``: ``num_steps / K`` updates per batch)
STEP_EVERY = ("batch", "window")
