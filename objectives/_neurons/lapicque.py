"""Lapicque's RC neuron, forward-Euler: ``U[t+1] = I R dt/(RC) + (1 - dt/(RC)) U[t] - R S[t] U_thr``
(snntorch.Lapicque given ``beta``: ``R = 1``, ``C = dt / log(1/beta)``, ``dt = 1``).

Unlike Leaky, the decay per step is ``1 - log(1/beta)``, not ``beta``: below
``beta = 1/e`` it turns negative and the membrane oscillates in sign, so the
config requires ``beta > 1/e`` for this neuron.

DC gain: with ``R = 1`` and ``dt = 1``, ``1 / RC = log(1/beta)``, so under a constant input
``I`` and no spike the membrane settles where ``U = log(1/beta) I + (1 - log(1/beta)) U``,
at ``U = I``: the gain is ``log(1/beta) / (1 - (1 - log(1/beta))) = 1`` for every beta.
Gain matching changes nothing here (its input scale is 1).
"""

from __future__ import annotations

import snntorch as snn
import torch

from .._specs import NEURON_SPECS
from ._base import Neuron, State


class Lapicque(Neuron):
    """Lapicque (RC circuit) integrate-and-fire neuron."""

    state_names = ("mem",)
    spec = NEURON_SPECS["lapicque"]
    beta: torch.Tensor
    R: torch.Tensor
    C: torch.Tensor
    time_step: torch.Tensor
    inv_rc: torch.Tensor
    decay: torch.Tensor

    def __init__(
        self,
        spike_fn,
        beta: float = 0.5,
        threshold: float = 1.0,
        reset_mechanism: str | None = None,
        gain: str = "matched",
    ):
        super().__init__(spike_fn, threshold, reset_mechanism, gain, beta=beta)
        beta_t = torch.as_tensor(float(beta))
        self.register_buffer("beta", beta_t)
        self.register_buffer("R", torch.as_tensor(1.0))
        self.register_buffer("time_step", torch.as_tensor(1.0))
        self.register_buffer("C", self.time_step / (self.R * torch.log(1 / beta_t)))
        # snntorch derives these from R, C and the time step at every step; once here is the
        # same values and four kernels less per step
        rc = self.R * self.C
        self.register_buffer("inv_rc", 1 / rc, persistent=False)
        self.register_buffer("decay", 1 - self.time_step / rc, persistent=False)

    def _integrate(self, x, mem):
        # snntorch's x * R * (1 / RC) * time_step + (1 - time_step / RC) * mem, with R and the
        # time step 1 (multiplying by them changes no value: two kernels less per step)
        return x * self.inv_rc + self.decay * mem

    def integrate(self, x: torch.Tensor, state: State, reset: torch.Tensor) -> State:
        (mem,) = state
        mem = self._integrate(x, mem)
        if self.reset_mechanism == "subtract":
            mem = mem - self.scaled_reset(reset)
        elif self.reset_mechanism == "zero":
            mem = mem - reset * mem
        return (mem,)

    def backward_window(self, steps, local, reset, later, emit):
        # P[t] = c_in I[t] + decay U[t-1]; U[t] = P[t], times (1 - reset[t]) under the zero reset
        decay = self.decay
        c_in = self.inv_rc  # R * (1 / RC) * time_step, with R and the time step 1
        zero = self.reset_mechanism == "zero"

        def on_p(t: int, grad: torch.Tensor) -> torch.Tensor:
            """The gradient on P[t], given the one on U[t] (the later steps' included)."""
            if zero:
                grad.mul_(1 - reset(t))
            emit(t, grad * c_in)
            return grad

        grad = on_p(steps - 1, local(steps - 1))
        for t in range(steps - 2, -1, -1):
            grad = on_p(t, local(t).addcmul_(grad, decay))
        return (grad * decay,)

    def _snntorch(self, init_hidden, output):
        return snn.Lapicque(
            beta=float(self.beta),
            threshold=float(self.threshold),
            spike_grad=self.spike_fn,
            reset_mechanism=self.reset_mechanism,
            init_hidden=init_hidden,
            output=output,
        )
