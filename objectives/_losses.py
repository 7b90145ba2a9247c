"""Losses over the output layer's spikes or membrane (``snntorch.functional``), with the
prediction rule that goes with each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import snntorch.functional as SF
import torch

from ._specs import LOSS_SPECS, LossSpec


@dataclass(frozen=True)
class Loss:
    """``make()`` builds the snntorch criterion; ``predict`` turns the output it reads (its spec's ``on``:
    ``spikes`` or ``mem``, ``[T, B, classes]``) into class indices."""

    name: str
    make: Callable[[], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]
    predict: Callable[[torch.Tensor], torch.Tensor]

    @property
    def spec(self) -> LossSpec:
        """What the loss reads and needs of a window."""
        return LOSS_SPECS[self.name]

    @property
    def on(self) -> str:
        """``spikes`` or ``mem``: the output the loss and its prediction read."""
        return self.spec.on


def _most_spikes(spk: torch.Tensor) -> torch.Tensor:
    return spk.sum(0).argmax(1)


def _highest_membrane(mem: torch.Tensor) -> torch.Tensor:
    return mem.max(0).values.argmax(1)


LOSSES: dict[str, Loss] = {
    loss.name: loss
    for loss in (
        # cross-entropy at every step, averaged over time (the original code's "CrossEntropyRate")
        # snntorch's loop over the steps, kept as it is: one F.cross_entropy over all steps gives
        # the same value only to float rounding (a BPTT batch was about 12 % faster on a GPU with
        # it), and every other change to the fast path leaves the values bit for bit unchanged
        Loss("ce_rate", SF.ce_rate_loss, _most_spikes),
        # cross-entropy of the spike counts
        Loss("ce_count", SF.ce_count_loss, _most_spikes),
        # spike counts regressed to 80 % of the steps for the right class, 20 % for the others
        # (snntorch's tutorial values; its default 100 %/0 % leaves no margin)
        Loss("mse_count", lambda: SF.mse_count_loss(correct_rate=0.8, incorrect_rate=0.2), _most_spikes),
        # cross-entropy of each output neuron's highest membrane potential
        Loss("ce_max_membrane", SF.ce_max_membrane_loss, _highest_membrane),
    )
}
