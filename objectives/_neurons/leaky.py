"""Leaky integrate-and-fire: ``U[t+1] = beta U[t] + I[t+1] - R S[t] U_thr`` (snntorch.Leaky).

DC gain: under a constant input ``I`` and no spike the membrane settles where
``U = beta U + I``, at ``U = I / (1 - beta)``: the gain is ``1 / (1 - beta)`` (2 at
beta 0.5, 20 at 0.95). Gain matching multiplies the input by ``1 - beta``.
"""

from __future__ import annotations

import snntorch as snn
import torch

from .._specs import NEURON_SPECS
from ._base import Neuron, State


class Leaky(Neuron):
    """First-order leaky integrate-and-fire neuron."""

    state_names = ("mem",)
    spec = NEURON_SPECS["leaky"]
    emits_local = True  # dU[t]/dI[t] = 1
    beta: torch.Tensor

    def __init__(
        self,
        spike_fn,
        beta: float = 0.5,
        threshold: float = 1.0,
        reset_mechanism: str | None = None,
        gain: str = "matched",
    ):
        super().__init__(spike_fn, threshold, reset_mechanism, gain, beta=beta)
        # clamped once here, not at every step as snntorch does: the same value, one kernel less per step
        self.register_buffer("beta", torch.as_tensor(float(beta)).clamp(0, 1))

    def integrate(self, x: torch.Tensor, state: State, reset: torch.Tensor) -> State:
        (mem,) = state
        beta = self.beta
        if self.reset_mechanism == "subtract":
            mem = beta * mem + x - self.scaled_reset(reset)
        elif self.reset_mechanism == "zero":
            mem = beta * ((1 - reset) * mem) + x
        else:
            mem = beta * mem + x
        return (mem,)

    def backward_window(self, steps, local, reset, later, emit):
        # dU[t]/dU[t-1] = beta, times (1 - reset[t]) under the zero reset; dU[t]/dI[t] = 1
        beta = self.beta
        zero = self.reset_mechanism == "zero"

        def carry(t: int) -> torch.Tensor:
            """dU[t]/dU[t-1]."""
            return beta * (1 - reset(t)) if zero else beta

        grad = local(steps - 1)
        emit(steps - 1, grad)
        for t in range(steps - 2, -1, -1):
            grad = local(t).addcmul_(grad, carry(t + 1))
            emit(t, grad)
        return (grad * carry(0),)

    def _snntorch(self, init_hidden, output):
        return snn.Leaky(
            beta=float(self.beta),
            threshold=float(self.threshold),
            spike_grad=self.spike_fn,
            reset_mechanism=self.reset_mechanism,
            init_hidden=init_hidden,
            output=output,
        )
