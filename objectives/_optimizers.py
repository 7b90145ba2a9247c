"""Optimizers (``torch.optim``), each built from the parameters, a learning rate and
whether a CUDA graph will record its steps (``capturable``: its step count lives on the
device, so the recorded step reads the current count at every replay)."""

from __future__ import annotations

from collections.abc import Callable

import torch

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adamax": lambda params, lr, capturable=False: torch.optim.Adamax(params, lr=lr, capturable=capturable),
    "adam": lambda params, lr, capturable=False: torch.optim.Adam(params, lr=lr, capturable=capturable),
    "adamw": lambda params, lr, capturable=False: torch.optim.AdamW(params, lr=lr, capturable=capturable),
    # plain SGD stalls on surrogate gradients; momentum 0.9 is the usual companion. Its state
    # (the momentum buffer) has no step count: a CUDA graph can record it as it is.
    "sgd": lambda params, lr, capturable=False: torch.optim.SGD(params, lr=lr, momentum=0.9),
}
