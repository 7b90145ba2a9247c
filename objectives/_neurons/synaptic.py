"""Synaptic conductance-based LIF: ``I_syn[t+1] = alpha I_syn[t] + I[t+1]``,
``U[t+1] = beta U[t] + I_syn[t+1] - R S[t] U_thr`` (snntorch.Synaptic).

DC gain: under a constant input ``I`` and no spike the synaptic current settles at
``I_syn = alpha I_syn + I``, ``I_syn = I / (1 - alpha)``, and the membrane at
``U = beta U + I_syn``, ``U = I_syn / (1 - beta)``: the gain is
``1 / ((1 - alpha)(1 - beta))`` (20 at alpha 0.9, beta 0.5: with one threshold for all
neurons this one saturates). Gain matching multiplies the input by ``(1 - alpha)(1 - beta)``.
"""

from __future__ import annotations

import snntorch as snn
import torch

from .._specs import NEURON_SPECS
from ._base import Neuron, State


class Synaptic(Neuron):
    """Second-order LIF neuron: a decaying synaptic current feeds a leaky membrane."""

    state_names = ("syn", "mem")
    spec = NEURON_SPECS["synaptic"]
    alpha: torch.Tensor
    beta: torch.Tensor

    def __init__(
        self,
        spike_fn,
        alpha: float = 0.9,
        beta: float = 0.5,
        threshold: float = 1.0,
        reset_mechanism: str | None = None,
        gain: str = "matched",
    ):
        super().__init__(spike_fn, threshold, reset_mechanism, gain, alpha=alpha, beta=beta)
        # clamped once here, not at every step as snntorch does: the same values, two kernels less per step
        self.register_buffer("alpha", torch.as_tensor(float(alpha)).clamp(0, 1))
        self.register_buffer("beta", torch.as_tensor(float(beta)).clamp(0, 1))

    def integrate(self, x: torch.Tensor, state: State, reset: torch.Tensor) -> State:
        syn, mem = state
        syn = self.alpha * syn + x
        mem = self.beta * mem + syn
        if self.reset_mechanism == "subtract":
            mem = mem - self.scaled_reset(reset)
        elif self.reset_mechanism == "zero":
            mem = mem - mem * reset
        return (syn, mem)

    def backward_window(self, steps, local, reset, later, emit):
        # P[t] = beta U[t-1] + I_syn[t]; U[t] = P[t], times (1 - reset[t]) under the zero reset;
        # I_syn[t] = alpha I_syn[t-1] + I[t]
        alpha, beta = self.alpha, self.beta
        zero = self.reset_mechanism == "zero"
        grad_syn = later[0]  # on I_syn[t] from the steps after t (or the final state)

        def on_p(t: int, grad: torch.Tensor) -> torch.Tensor:
            """The gradient on P[t], given the one on U[t] (the later steps' included); emits step t's input
            gradient and carries the synaptic current's back to step t - 1."""
            nonlocal grad_syn
            if zero:
                grad.mul_(1 - reset(t))
            syn = grad if grad_syn is None else grad + grad_syn
            emit(t, syn)
            grad_syn = syn * alpha
            return grad

        grad_p = on_p(steps - 1, local(steps - 1))
        for t in range(steps - 2, -1, -1):
            grad_p = on_p(t, local(t).addcmul_(grad_p, beta))
        return (grad_syn, grad_p * beta)

    def _snntorch(self, init_hidden, output):
        return snn.Synaptic(
            alpha=float(self.alpha),
            beta=float(self.beta),
            threshold=float(self.threshold),
            spike_grad=self.spike_fn,
            reset_mechanism=self.reset_mechanism,
            init_hidden=init_hidden,
            output=output,
        )
