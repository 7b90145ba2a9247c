"""Losses over the output layer's spikes or membrane (``snntorch.functional``), with the
prediction rule that goes with each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import snntorch.functional as SF
import torch


@dataclass(frozen=True)
class Loss:
    """``make()`` builds the snntorch criterion; ``on`` says whether it reads the output
    ``spikes`` or ``mem`` (``[T, B, classes]``); ``predict`` turns those into class indices."""

    name: str
    make: Callable[[], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]
    on: str
    predict: Callable[[torch.Tensor], torch.Tensor]
    #: whether a CUDA graph can record it (no operation that waits for the GPU's answer)
    graphable: bool = True
    #: the fewest time steps a window (one loss, one optimizer step) must have for it to mean anything
    min_window: int = 1


def _most_spikes(spk: torch.Tensor) -> torch.Tensor:
    return spk.sum(0).argmax(1)


def _highest_membrane(mem: torch.Tensor) -> torch.Tensor:
    return mem.max(0).values.argmax(1)


LOSSES: dict[str, Loss] = {
    # cross-entropy at every step, averaged over time (the seed's "CrossEntropyRate")
    # snntorch's loop over the steps, kept as it is: one F.cross_entropy over all steps gives
    # the same value only to float rounding (a BPTT batch was about 12 % faster on a GPU with
    # it), and every other change to the fast path leaves the values bit for bit unchanged
    "ce_rate": Loss("ce_rate", SF.ce_rate_loss, "spikes", _most_spikes),
    # cross-entropy of the spike counts
    "ce_count": Loss("ce_count", SF.ce_count_loss, "spikes", _most_spikes),
    # spike counts regressed to 80 % of the steps for the right class, 20 % for the others
    # (snntorch's tutorial values; its default 100 %/0 % leaves no margin)
    # (its targets are built with boolean-mask assignment, which asks the GPU how many
    # elements match: no CUDA graph). The targets are whole spike counts of the window,
    # int(0.8 * steps) and int(0.2 * steps): in a one-step window (rtrl) both are 0 and the
    # loss only teaches silence, so it needs windows of two steps or more.
    "mse_count": Loss(
        "mse_count", lambda: SF.mse_count_loss(correct_rate=0.8, incorrect_rate=0.2), "spikes", _most_spikes,
        graphable=False, min_window=2,
    ),
    # cross-entropy of each output neuron's highest membrane potential
    "ce_max_membrane": Loss("ce_max_membrane", SF.ce_max_membrane_loss, "mem", _highest_membrane),
}
