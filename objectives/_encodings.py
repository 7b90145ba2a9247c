"""Input encodings: how a static image becomes input current over time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from snntorch import spikegen


@dataclass(frozen=True)
class Encoding:
    """``static`` encodings feed the same tensor at every step (the network may
    compute the first convolution once); others return ``[T, B, ...]``."""

    name: str
    static: bool
    encode: Callable[[torch.Tensor, int], torch.Tensor]


ENCODINGS: dict[str, Encoding] = {
    # the image itself as a constant input current at every time step (the seed's)
    "direct": Encoding("direct", True, lambda x, num_steps: x),
    # Poisson spikes: each pixel fires with probability equal to its intensity in [0, 1]
    "rate": Encoding("rate", False, lambda x, num_steps: spikegen.rate(x, num_steps=num_steps)),
}
