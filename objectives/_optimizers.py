"""Optimizers (``torch.optim``), each built from the parameters and a learning rate."""

from __future__ import annotations

from typing import Callable, Iterable

import torch

OPTIMIZERS: dict[str, Callable[[Iterable[torch.nn.Parameter], float], torch.optim.Optimizer]] = {
    "adamax": lambda params, lr: torch.optim.Adamax(params, lr=lr),
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr),
    "adamw": lambda params, lr: torch.optim.AdamW(params, lr=lr),
    # plain SGD stalls on surrogate gradients; momentum 0.9 is the usual companion
    "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
}
