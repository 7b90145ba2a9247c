"""Neuron models, one per file, each with snntorch's equations and an explicit state."""

from ._base import RESET_MECHANISMS, Neuron, untrack, whole_window
from .alpha import Alpha
from .lapicque import Lapicque
from .leaky import Leaky
from .synaptic import Synaptic

NEURONS: dict[str, type[Neuron]] = {
    "alpha": Alpha,
    "leaky": Leaky,
    "synaptic": Synaptic,
    "lapicque": Lapicque,
}

__all__ = ["NEURONS", "RESET_MECHANISMS", "Neuron", "Alpha", "Lapicque", "Leaky", "Synaptic", "untrack", "whole_window"]
