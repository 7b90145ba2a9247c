"""Synaptic conductance-based LIF: ``I_syn[t+1] = alpha I_syn[t] + I[t+1]``,
``U[t+1] = beta U[t] + I_syn[t+1] - R S[t] U_thr`` (snntorch.Synaptic)."""

from __future__ import annotations

import snntorch as snn
import torch

from ._base import Neuron, State


class Synaptic(Neuron):
    """Second-order LIF neuron: a decaying synaptic current feeds a leaky membrane."""

    state_names = ("syn", "mem")
    params = ("alpha", "beta")

    def __init__(
        self, spike_fn, alpha: float = 0.9, beta: float = 0.5, threshold: float = 1.0, reset_mechanism: str | None = None
    ):
        super().__init__(spike_fn, threshold, reset_mechanism)
        self.register_buffer("alpha", torch.as_tensor(float(alpha)))
        self.register_buffer("beta", torch.as_tensor(float(beta)))

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        syn, mem = state
        reset = self.previous_spike(mem)
        syn = self.alpha.clamp(0, 1) * syn + x
        mem = self.beta.clamp(0, 1) * mem + syn
        if self.reset_mechanism == "subtract":
            mem = mem - reset * self.threshold
        elif self.reset_mechanism == "zero":
            mem = mem - mem * reset
        return self.fire(mem), (syn, mem)

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
