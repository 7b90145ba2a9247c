"""Alpha neuron: an excitatory and an inhibitory synaptic trace whose difference,
scaled by ``tau = log(alpha) / (log(beta) - log(alpha)) + 1``, is the membrane
(snntorch.Alpha; ``alpha > beta`` is required. snntorch resets it to zero by default, which
``model.reset_mechanism: null`` keeps; the run config's default is the subtractive reset, as for
every neuron: the zero reset empties both slow traces at every spike).

DC gain: under a constant input ``I`` and no spike the traces settle at
``E = alpha E + I``, ``E = I / (1 - alpha)`` and ``N = beta N - I``, ``N = -I / (1 - beta)``,
so the membrane ``tau (E + N)`` settles at ``tau (1 / (1 - alpha) - 1 / (1 - beta)) I``
(about 9.4 at alpha 0.9, beta 0.5; positive, as alpha > beta). Gain matching divides
the input by that gain.

Delay: ``E`` and ``N`` take the same input with opposite signs at once, so
``dU[t]/dI[t] = tau (1 - 1) = 0``: the membrane answers an input from the next step on.
Each alpha layer adds that step, and a truncated window shorter than the network's
delay gives the first layers no gradient (``NeuronSpec.min_window``; the config refuses it).
Under the subtractive reset a neuron reset at step t takes ``tau I[t]`` at once through
snntorch's reset term; the rule counts the kernel's delay, not that side path.
"""

from __future__ import annotations

import snntorch as snn
import torch

from .._specs import NEURON_SPECS
from ._base import Neuron, State


class Alpha(Neuron):
    """Alpha-kernel neuron: the membrane's response to one input spike is ``tau (alpha^t - beta^t)``."""

    state_names = ("syn_exc", "syn_inh", "mem")
    spec = NEURON_SPECS["alpha"]
    alpha: torch.Tensor
    beta: torch.Tensor
    tau: torch.Tensor

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
        self.register_buffer("alpha", torch.as_tensor(float(alpha)).clamp(0, 1))
        self.register_buffer("beta", torch.as_tensor(float(beta)))
        # snntorch computes tau from alpha and beta at every step; once here is the same value
        # (the spec's rule keeps both in (0, 1), so its clamps change nothing) and five kernels less per step
        tau = torch.log(self.alpha) / (torch.log(self.beta) - torch.log(self.alpha)) + 1
        self.register_buffer("tau", tau, persistent=False)

    def _traces(self, x, syn_exc, syn_inh):
        syn_exc = self.alpha * syn_exc + x
        syn_inh = self.beta * syn_inh - x
        return syn_exc, syn_inh, self.tau * (syn_exc + syn_inh)

    def integrate(self, x: torch.Tensor, state: State, reset: torch.Tensor) -> State:
        syn_exc_prev, syn_inh_prev, mem = state
        syn_exc, syn_inh, mem = self._traces(x, syn_exc_prev, syn_inh_prev)
        if self.reset_mechanism == "subtract":
            # snntorch's subtractive reset for Alpha, term by term
            syn_exc = syn_exc - self.scaled_reset(reset)
            syn_inh = syn_inh - (self.beta * syn_inh_prev - x) * reset
            mem = mem - (-syn_inh_prev) * reset
        elif self.reset_mechanism == "zero":
            syn_exc = syn_exc - syn_exc * reset
            syn_inh = syn_inh - syn_inh * reset
            mem = mem - mem * reset
        return (syn_exc, syn_inh, mem)

    def backward_window(self, steps, local, reset, later, emit):
        # E[t] = alpha E[t-1] + I[t], N[t] = beta N[t-1] - I[t], U[t] = tau (E[t] + N[t]); the
        # membrane feeds nothing later (only the detached reset): the traces carry the gradient
        alpha, beta, tau = self.alpha, self.beta, self.tau
        mechanism = self.reset_mechanism
        # gradients on the traces after step t's reset, from the steps after t (or the final state)
        exc, inh = later
        for t in range(steps - 1, -1, -1):
            g_mem = local(t)
            exc = exc if exc is not None else torch.zeros_like(g_mem)
            inh = inh if inh is not None else torch.zeros_like(g_mem)
            r = reset(t)
            if mechanism == "zero":
                keep = 1 - r
                g_mem.mul_(keep)
                exc, inh = exc * keep, inh * keep
            g_exc = torch.addcmul(exc, g_mem, tau)
            g_inh = torch.addcmul(inh, g_mem, tau)
            g_x = g_exc - g_inh
            if mechanism == "subtract":
                # the reset terms: - (beta N[t-1] - I[t]) reset on N, + N[t-1] reset on U
                g_x.addcmul_(inh, r)
                inh = (g_inh - inh * r) * beta + g_mem * r
            else:
                inh = g_inh * beta
            emit(t, g_x)
            exc = g_exc * alpha
        return (exc, inh, None)

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
