"""Alpha neuron: an excitatory and an inhibitory synaptic trace whose difference,
scaled by ``tau = log(alpha) / (log(beta) - log(alpha)) + 1``, is the membrane
(snntorch.Alpha; ``alpha > beta`` is required, and the reset is to zero by default)."""

from __future__ import annotations

import snntorch as snn
import torch

from ._base import Neuron, State


class Alpha(Neuron):
    """Alpha-kernel neuron: the membrane's response to one input spike is ``tau (alpha^t - beta^t)``."""

    state_names = ("syn_exc", "syn_inh", "mem")
    params = ("alpha", "beta")
    default_reset = "zero"

    def __init__(
        self, spike_fn, alpha: float = 0.9, beta: float = 0.5, threshold: float = 1.0, reset_mechanism: str | None = None
    ):
        super().__init__(spike_fn, threshold, reset_mechanism)
        problem = self.check(alpha=alpha, beta=beta)
        if problem:
            raise ValueError(problem[1])
        self.register_buffer("alpha", torch.as_tensor(float(alpha)).clamp(0, 1))
        self.register_buffer("beta", torch.as_tensor(float(beta)))

    @classmethod
    def check(cls, alpha: float = 0.9, beta: float = 0.5, **_) -> tuple[str, str] | None:
        if not alpha > beta:
            return "alpha", f"the alpha neuron needs alpha > beta (beta={beta})"
        if not 0 < beta < 1:
            return "beta", "the alpha neuron needs 0 < beta < 1 (log(beta) divides)"
        return None

    def _traces(self, x, syn_exc, syn_inh):
        alpha, beta = self.alpha.clamp(0, 1), self.beta.clamp(0, 1)
        syn_exc = alpha * syn_exc + x
        syn_inh = beta * syn_inh - x
        tau = torch.log(alpha) / (torch.log(beta) - torch.log(alpha)) + 1
        return syn_exc, syn_inh, tau * (syn_exc + syn_inh)

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        syn_exc_prev, syn_inh_prev, mem = state
        reset = self.previous_spike(mem)
        syn_exc, syn_inh, mem = self._traces(x, syn_exc_prev, syn_inh_prev)
        if self.reset_mechanism == "subtract":
            # snntorch's subtractive reset for Alpha, term by term
            syn_exc = syn_exc - self.threshold * reset
            syn_inh = syn_inh - (self.beta.clamp(0, 1) * syn_inh_prev - x) * reset
            mem = mem - (-syn_inh_prev) * reset
        elif self.reset_mechanism == "zero":
            syn_exc = syn_exc - syn_exc * reset
            syn_inh = syn_inh - syn_inh * reset
            mem = mem - mem * reset
        return self.fire(mem), (syn_exc, syn_inh, mem)

    def _snntorch(self, init_hidden, output):
        return snn.Alpha(
            alpha=float(self.alpha),
            beta=float(self.beta),
            threshold=float(self.threshold),
            spike_grad=self.spike_fn,
            reset_mechanism=self.reset_mechanism,
            init_hidden=init_hidden,
            output=output,
        )
