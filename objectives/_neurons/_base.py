"""What every neuron layer shares: an explicit state tuple, one step, a run over time."""

from __future__ import annotations

from typing import ClassVar

import torch
from snntorch._neurons.neurons import SpikingNeuron
from torch import nn

RESET_MECHANISMS = ("subtract", "zero", "none")

State = tuple[torch.Tensor, ...]


class Neuron(nn.Module):
    """A layer of spiking neurons with snntorch's equations and no hidden globals.

    Subclasses define ``step(x, state) -> (spk, state)`` for one time step, with
    the state a tuple in snntorch's argument order (membrane last), so the same
    tuple can be passed to the snntorch class for comparison. ``reset`` is the
    detached spike of the *previous* membrane, as snntorch computes it
    (``mem_reset``), so a spike resets the membrane at the next step.
    """

    #: state variables, in snntorch's argument order; the membrane is last
    state_names: ClassVar[tuple[str, ...]] = ("mem",)
    #: config fields (besides threshold) this neuron reads
    params: ClassVar[tuple[str, ...]] = ("beta",)
    default_reset: ClassVar[str] = "subtract"

    def __init__(self, spike_fn, threshold: float = 1.0, reset_mechanism: str | None = None):
        super().__init__()
        reset_mechanism = reset_mechanism or self.default_reset
        if reset_mechanism not in RESET_MECHANISMS:
            raise ValueError(
                f"reset_mechanism={reset_mechanism!r} is not one of {', '.join(RESET_MECHANISMS)}"
            )
        self.spike_fn = spike_fn
        self.reset_mechanism = reset_mechanism
        self.register_buffer("threshold", torch.as_tensor(float(threshold)))

    @classmethod
    def check(cls, **params: float) -> tuple[str, str] | None:
        """``(parameter, why)`` when these parameters cannot work for this neuron, else ``None``."""
        return None

    def init_state(self, like: torch.Tensor) -> State:
        """All-zero state shaped like one time step of input (snntorch's start)."""
        return tuple(torch.zeros_like(like) for _ in self.state_names)

    def previous_spike(self, mem: torch.Tensor) -> torch.Tensor:
        """The reset signal: whether the previous membrane was above threshold (no gradient)."""
        return (mem - self.threshold > 0).to(mem.dtype)

    def fire(self, mem: torch.Tensor) -> torch.Tensor:
        """Spikes of the new membrane, through the surrogate gradient."""
        return self.spike_fn(mem - self.threshold)

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """One time step: ``x`` is the input current, ``state`` the previous state (zeros if ``None``)."""
        if state is None:
            state = self.init_state(x)
        return self.step(x, state)

    def run(
        self, current: torch.Tensor, state: State | None, num_steps: int | None = None, record_mem: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None, State]:
        """Run over time. ``current`` is ``[T, ...]``, or one ``[...]`` tensor applied for
        ``num_steps`` steps (direct encoding: the same current at every step).

        Returns the spikes ``[T, ...]``, the membrane ``[T, ...]`` when ``record_mem``
        (else ``None``) and the final state.
        """
        constant = num_steps is not None
        steps = num_steps if constant else current.shape[0]
        if state is None:
            state = self.init_state(current if constant else current[0])
        # unbind, not current[t]: the backward of each current[t] would zero-fill a whole [T, ...] tensor
        inputs = [current] * steps if constant else current.unbind(0)
        spikes, mems = [], []
        for x in inputs:
            spk, state = self.step(x, state)
            spikes.append(spk)
            if record_mem:
                mems.append(state[-1])
        return torch.stack(spikes), (torch.stack(mems) if record_mem else None), state

    def to_snntorch(self, init_hidden: bool = False, output: bool = False, track: bool = False) -> nn.Module:
        """The equivalent ``snntorch`` neuron, with the same parameters and surrogate.

        snntorch appends every neuron it builds to a class-level list
        (``SpikingNeuron.instances``) that keeps them alive for the life of the
        process; unless ``track`` (which ``snntorch.backprop`` needs), the new
        neuron is taken out of that list again.
        """
        module = self._snntorch(init_hidden=init_hidden, output=output)
        if not track:
            untrack(module)
        return module

    def _snntorch(self, init_hidden: bool, output: bool) -> nn.Module:
        raise NotImplementedError


def untrack(module: nn.Module) -> None:
    """Remove ``module``'s snntorch neurons from snntorch's global instance list."""
    ids = {id(m) for m in module.modules()}
    SpikingNeuron.instances[:] = [n for n in SpikingNeuron.instances if id(n) not in ids]
