"""Surrogate gradients: a Heaviside step forward, a smooth function's derivative backward.

Every entry of :data:`SURROGATES` is a factory (``fast_sigmoid(slope=25)``) like
``snntorch.surrogate``, plus the smooth function (``primitive``) whose derivative
the backward pass is, so that a contract test can check one against the other by
finite differences. The input ``x`` is always ``U - U_thr``: the membrane
potential shifted by the threshold, as snntorch's neurons pass it.

Where snntorch 1.0's implementation does not compute what its docstring names,
the entry here is the corrected one (``snntorch_bug`` says what differs) and
``tests/test_surrogates.py`` shows the difference:

- ``sigmoid``: snntorch evaluates ``k exp(-kx) / (exp(-kx) + 1)^2``, which is
  ``inf / inf = NaN`` for ``x < -88/k`` (``x < -3.5`` at the default slope);
  here it is ``k s (1 - s)`` with ``s = sigmoid(kx)``, finite everywhere.
- ``triangular``: snntorch returns ``+thr`` below and ``-thr`` above the threshold,
  a constant whose sign is wrong for every spiking neuron; here it is the
  triangle ``a max(0, 1 - a|x|)``, the derivative of a piecewise quadratic.
- ``spike_rate_escape``: snntorch centres ``k exp(-b|x - 1|)`` one unit *above*
  the threshold (it subtracts the threshold twice); here it peaks at the threshold.
- ``sparse_fast_sigmoid``: snntorch passes gradient only where ``x > B``, i.e.
  for neurons already ``B`` above threshold, where the fast-sigmoid derivative is
  below ``1/(1+kB)^2``; here, as in Perez-Nieves & Goodman (2021), the gradient
  is kept for membranes above ``U_thr - B`` and dropped for neurons far below.

Two are not in snntorch: ``clipped_straight_through`` (the straight-through
estimator of binary networks, gradient 1 only within ``window`` of the threshold)
and ``escape_noise`` (Gygax & Zenke 2024: a stochastic neuron that spikes with
probability ``sigmoid(2 x / noise)``, trained with the derivative of a logistic escape
function; its slope is the surrogate's width, and at ``noise`` equal to that width the
backward is the forward's own derivative (normalized: over its peak), Gygax & Zenke's
matched case).

Under ``model.surrogate_scale: normalized`` (:meth:`Surrogate.normalized`) every
surrogate with a width is built with the shape parameters its spec derives from the
width ``w`` and divided by its peak: derivative 1 at the threshold and area ``2 w``
under it, as a box of half-width ``w``. The stochastic spike operator and the identity
straight-through estimator have no width: they are the same under either scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import torch

from ._specs import SURROGATE_SPECS

SpikeFn = Callable[[torch.Tensor], torch.Tensor]


class _Spike(torch.autograd.Function):
    """Heaviside step forward; ``derivative(x)`` times the incoming gradient backward."""

    @staticmethod
    def forward(ctx, x, derivative):
        ctx.save_for_backward(x)
        ctx.derivative = derivative
        # the step written straight into a float tensor: one kernel, not a comparison and a cast
        return torch.gt(x, 0, out=torch.empty_like(x))

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * ctx.derivative(x), None


class _EscapeSpike(torch.autograd.Function):
    """A spike drawn with probability ``probability(x)`` forward; ``derivative(x)`` times the incoming
    gradient backward."""

    @staticmethod
    def forward(ctx, x, probability, derivative):
        ctx.save_for_backward(x)
        ctx.derivative = derivative
        return _draw(probability(x))

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * ctx.derivative(x), None, None


def _draw(p: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """1 with probability ``p``, else 0, written into ``out`` (a float tensor) when given. A uniform draw below
    ``p`` is a Bernoulli draw; on a CPU it is some 3x faster than ``torch.bernoulli``."""
    return torch.lt(torch.rand_like(p), p, out=torch.empty_like(p) if out is None else out)


def _spike_fn(derivative: Callable[[torch.Tensor], torch.Tensor]) -> SpikeFn:
    def spike(x: torch.Tensor) -> torch.Tensor:
        return _Spike.apply(x, derivative)

    # what the neurons' fused window multiplies by in its backward (Neuron.spike_derivative)
    spike.derivative = derivative  # type: ignore[attr-defined]
    return spike


def _escape_fn(probability: Callable[[torch.Tensor], torch.Tensor],
               derivative: Callable[[torch.Tensor], torch.Tensor]) -> SpikeFn:
    def spike(x: torch.Tensor) -> torch.Tensor:
        return _EscapeSpike.apply(x, probability, derivative)

    def sample(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """A draw of the spike without autograd (the neurons' fused window and reset), into ``out``."""
        return _draw(probability(x), out)

    spike.derivative = derivative  # type: ignore[attr-defined]
    spike.probability = probability  # type: ignore[attr-defined]
    spike.sample = sample  # type: ignore[attr-defined]
    return spike


def _rescaled(spike_fn: SpikeFn, factor: float) -> SpikeFn:
    """The same spike function with its backward's derivative times ``factor``."""
    derivative = spike_fn.derivative  # type: ignore[attr-defined]

    def scaled(x: torch.Tensor) -> torch.Tensor:
        return derivative(x) * factor

    probability = getattr(spike_fn, "probability", None)
    return _spike_fn(scaled) if probability is None else _escape_fn(probability, scaled)


def side_by_side(spike_fns: Sequence[SpikeFn], dim: int) -> SpikeFn:
    """One spike function over ``len(spike_fns)`` equal blocks of ``dim`` (the members of a fused trial
    array, side by side): block k's derivative, and its draw under a stochastic forward pass, are
    ``spike_fns[k]``'s, each computed on its block alone."""
    blocks = len(spike_fns)

    def blockwise(fns: Sequence[Callable[[torch.Tensor], torch.Tensor]]) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda x: torch.cat([f(b) for f, b in zip(fns, x.chunk(blocks, dim))], dim)

    derivative = blockwise([f.derivative for f in spike_fns])  # type: ignore[attr-defined]
    probabilities = [getattr(f, "probability", None) for f in spike_fns]
    if probabilities[0] is None:
        return _spike_fn(derivative)
    return _escape_fn(blockwise(cast(list[Callable[[torch.Tensor], torch.Tensor]], probabilities)), derivative)


def atan(alpha: float = 2.0) -> SpikeFn:
    """Arc-tangent: ``S ~ arctan(pi alpha x / 2) / pi``, ``dS/dx = (alpha/2) / (1 + (pi alpha x / 2)^2)``."""
    return _spike_fn(lambda x: alpha / 2 / (1 + (math.pi / 2 * alpha * x) ** 2))


def _atan_primitive(x, alpha=2.0):
    return torch.atan(math.pi / 2 * alpha * x) / math.pi + 0.5


def fast_sigmoid(slope: float = 25.0) -> SpikeFn:
    """Fast sigmoid (SuperSpike): ``S ~ x / (1 + k|x|)``, ``dS/dx = 1 / (1 + k|x|)^2``."""
    # ** -2 is one kernel computing 1 / (t * t), the value 1.0 / t ** 2 takes three kernels for
    return _spike_fn(lambda x: (slope * torch.abs(x) + 1.0) ** -2)


def _fast_sigmoid_primitive(x, slope=25.0):
    return x / (1 + slope * torch.abs(x))


def sigmoid(slope: float = 5.0) -> SpikeFn:
    """Logistic sigmoid: ``S ~ 1 / (1 + exp(-kx))``, ``dS/dx = k s (1 - s)``."""

    def derivative(x):
        s = torch.sigmoid(slope * x)
        return slope * s * (1 - s)

    return _spike_fn(derivative)


def _sigmoid_primitive(x, slope=5.0):
    return torch.sigmoid(slope * x)


def sparse_fast_sigmoid(slope: float = 25.0, B: float = 2.0) -> SpikeFn:
    """Sparse fast sigmoid: the fast-sigmoid derivative where ``x > -B`` (membrane above
    ``U_thr - B``), zero for neurons further below threshold."""
    return _spike_fn(lambda x: (x > -B).to(x.dtype) * (slope * torch.abs(x) + 1.0) ** -2)


def _sparse_fast_sigmoid_primitive(x, slope=25.0, B=2.0):
    return _fast_sigmoid_primitive(torch.clamp(x, min=-B), slope)


def spike_rate_escape(beta: float = 1.0, slope: float = 25.0) -> SpikeFn:
    """Escape noise (Gerstner & Kistler): ``dS/dx = k exp(-beta |x|)``, peaking at the threshold."""
    return _spike_fn(lambda x: slope * torch.exp(-beta * torch.abs(x)))


def _spike_rate_escape_primitive(x, beta=1.0, slope=25.0):
    below = slope / beta * torch.exp(beta * torch.clamp(x, max=0))
    above = slope / beta * (2 - torch.exp(-beta * torch.clamp(x, min=0)))
    return torch.where(x < 0, below, above)


def stochastic_spike_operator(mean: float = 0.0, variance: float = 0.2) -> SpikeFn:
    """Stochastic spike operator: ``dS/dx = 1`` above threshold, uniform noise
    ``(U[-0.5, 0.5) + mean) * variance`` below (no smooth primitive: it is random)."""

    def derivative(x):
        above = (x > 0).to(x.dtype)
        noise = (torch.rand_like(x) - 0.5 + mean) * variance
        return above + (1 - above) * noise

    return _spike_fn(derivative)


def straight_through_estimator() -> SpikeFn:
    """Straight-through estimator: ``S ~ x``, ``dS/dx = 1`` everywhere."""
    return _spike_fn(torch.ones_like)


def _identity_primitive(x):
    return x.clone()


def clipped_straight_through(window: float = 1.0) -> SpikeFn:
    """Clipped straight-through estimator: ``S ~ clamp(x, -window, window)``, ``dS/dx = 1`` where
    ``|x| <= window``, else 0 (the straight-through estimator of binarized networks: Hubara et al. 2016)."""
    return _spike_fn(lambda x: (torch.abs(x) <= window).to(x.dtype))


def _clipped_primitive(x, window=1.0):
    return torch.clamp(x, -window, window)


def escape_noise(slope: float = 4.0, noise: float = 0.05) -> SpikeFn:
    """Escape noise (Gygax & Zenke 2024): forward, a spike with probability ``sigmoid(2 x / noise)`` (the neuron is
    stochastic; the mean of its spike is that probability); backward, ``k s (1 - s)`` with ``s = sigmoid(k x)``,
    the derivative of the escape function ``sigmoid(k x)``: the forward one at ``noise = 2 / k``."""

    def probability(x):
        return torch.sigmoid(x * (2 / noise))

    def derivative(x):
        p = torch.sigmoid(slope * x)
        return slope * p * (1 - p)

    return _escape_fn(probability, derivative)


def _escape_noise_primitive(x, slope=4.0):
    return torch.sigmoid(slope * x)


def triangular(alpha: float = 0.5) -> SpikeFn:
    """Triangle of half-width ``1/alpha`` and area 1: ``dS/dx = alpha max(0, 1 - alpha|x|)``,
    the derivative of a piecewise quadratic (SpikingJelly's PiecewiseQuadratic)."""
    return _spike_fn(lambda x: alpha * torch.clamp(1 - alpha * torch.abs(x), min=0))


def _triangular_primitive(x, alpha=0.5):
    inside = 0.5 + alpha * x - alpha**2 * x * torch.abs(x) / 2
    return torch.where(
        x <= -1 / alpha, torch.zeros_like(x), torch.where(x >= 1 / alpha, torch.ones_like(x), inside)
    )


@dataclass(frozen=True)
class Surrogate:
    """One registry entry: the factory and the smooth function it differentiates; the shape parameters,
    their defaults and the normalized family's rules are the entry's :class:`SurrogateSpec`."""

    name: str
    factory: Callable[..., SpikeFn]
    primitive: Callable[..., torch.Tensor] | None
    kinks: tuple[Callable[..., float], ...] = field(default=())
    snntorch_bug: str | None = None

    @property
    def params(self) -> Mapping[str, float]:
        """The shape parameters and their defaults."""
        return SURROGATE_SPECS[self.name].params

    def make(self, **params: float) -> SpikeFn:
        """A spike function with ``params`` over the defaults (unknown names raise ``ValueError``)."""
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise ValueError(
                f"surrogate {self.name!r} has no parameter {unknown[0]!r}; allowed: {', '.join(self.params) or 'none'}"
            )
        return self.factory(**{**self.params, **params})

    def normalized(self, width: float, **params: float) -> SpikeFn:
        """The spike function whose derivative is 1 at the threshold with area ``2 width`` under it, with
        ``params`` for the parameters the width does not set (for a surrogate with no width: :meth:`make`)."""
        spec = SURROGATE_SPECS[self.name]
        if spec.width is None:
            return self.make(**params)
        fixed = sorted(set(params) & set(spec.width_params))
        if fixed:
            raise ValueError(f"surrogate {self.name!r}: {fixed[0]!r} is set by the width under the normalized scale")
        shape = {**self.params, **params, **spec.width(width)}
        peak = spec.peak(**shape)
        spike_fn = self.make(**shape)
        return spike_fn if peak == 1.0 else _rescaled(spike_fn, 1 / peak)

    def build(self, scale: str, width: float, **params: float) -> SpikeFn:
        """The spike function under ``model.surrogate_scale`` ``scale`` (``width``: ``normalized`` only)."""
        return self.normalized(width, **params) if scale == "normalized" else self.make(**params)


SURROGATES: dict[str, Surrogate] = {
    s.name: s
    for s in (
        Surrogate("atan", atan, _atan_primitive),
        Surrogate("fast_sigmoid", fast_sigmoid, _fast_sigmoid_primitive),
        Surrogate(
            "sigmoid", sigmoid, _sigmoid_primitive, snntorch_bug="NaN gradient for x < -88/slope (exp overflow)"
        ),
        Surrogate(
            "sparse_fast_sigmoid",
            sparse_fast_sigmoid,
            _sparse_fast_sigmoid_primitive,
            kinks=(lambda slope, B: -B,),
            snntorch_bug="gradient only where U - U_thr > B, i.e. never between threshold and threshold + B",
        ),
        Surrogate(
            "spike_rate_escape",
            spike_rate_escape,
            _spike_rate_escape_primitive,
            snntorch_bug="gradient peaks at U_thr + 1, not at the threshold",
        ),
        Surrogate("stochastic_spike_operator", stochastic_spike_operator, None),
        Surrogate("straight_through_estimator", straight_through_estimator, _identity_primitive),
        Surrogate(
            "triangular",
            triangular,
            _triangular_primitive,
            snntorch_bug="constant +thr below and -thr above threshold: wrong sign and not a triangle",
        ),
        Surrogate(
            "clipped_straight_through",
            clipped_straight_through,
            _clipped_primitive,
            kinks=(lambda window: -window, lambda window: window),
        ),
        Surrogate("escape_noise", escape_noise, _escape_noise_primitive),
    )
}
