"""Input encodings: how a static image becomes input current over time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from snntorch import spikegen

from ._specs import ENCODING_SPECS


@dataclass(frozen=True)
class Encoding:
    """``encode(x, num_steps)``: the same tensor for a static encoding (its spec says), else ``[T, B, ...]``."""

    name: str
    encode: Callable[[torch.Tensor, int], torch.Tensor]

    @property
    def static(self) -> bool:
        """Whether the same tensor is fed at every step (the network may compute the first convolution once)."""
        return ENCODING_SPECS[self.name].static


ENCODINGS: dict[str, Encoding] = {
    e.name: e
    for e in (
        # the image itself as a constant input current at every time step (the original code's)
        Encoding("direct", lambda x, num_steps: x),
        # Poisson spikes: each pixel fires with probability equal to its intensity in [0, 1]
        Encoding("rate", lambda x, num_steps: spikegen.rate(x, num_steps=num_steps)),
    )
}
