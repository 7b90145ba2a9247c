"""Neuron models, one per file, each with snntorch's equations and an explicit state."""

from ._base import Neuron, untrack, whole_window
from .alpha import Alpha
from .lapicque import Lapicque
from .leaky import Leaky
from .synaptic import Synaptic

#: the neuron registry, keyed as ``NEURON_SPECS``
NEURONS: dict[str, type[Neuron]] = {cls.spec.name: cls for cls in (Alpha, Leaky, Synaptic, Lapicque)}

__all__ = ["NEURONS", "Neuron", "Alpha", "Lapicque", "Leaky", "Synaptic", "untrack", "whole_window"]
