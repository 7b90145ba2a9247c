"""What a trained spiking network costs at inference, by NeuroBench's definitions
(Yik et al., Nature Communications 2025; the ``neurobench`` package 2.3, ``neurobench/metrics/``).

One pass over a split (no gradient) records every spiking layer's spikes; from
them come, per layer and in total, spikes per sample, activation sparsity, dead and
saturated neurons, synaptic operations (effective multiply-accumulates, effective
accumulates, dense), an energy proxy, and the accuracy when the output is read
after each time step. Footprint and connection sparsity come from the weights.

Synaptic operations are counted as NeuroBench's ``SynapticOperations`` does
(``neurobench/metrics/workload/synaptic_operations.py``, with
``neurobench/metrics/utils/layers/macs.py: stateless_layer_macs`` and
``.../layers/input.py: binary_inputs``): at every time step, each connection layer
(convolution or linear) is run on its input made binary (nonzero -> 1) with its
weights made binary (nonzero -> 1) and no bias, and the sum of its outputs is the
step's operation count; the same with every input and weight set to 1 is the dense
count. They count as accumulates (ACs) when the layer's input holds only 0 and +-1
(spikes), else as multiply-accumulates (MACs). Here the sum of a binary layer's
outputs is computed without running it: it equals, over the input positions, the
number of times the position was nonzero times its *fan-out* (how many nonzero
weights read it, over all output positions: the layer's adjoint applied to ones).
So a layer's operations are a dot product of the previous layer's per-neuron spike
counts with a fixed fan-out map, and cost no extra pass.

In this network (``ConvSNN``) convolution ``i`` reads the spikes of spiking layer
``i - 1`` (the image for the first), and max pooling sits between a convolution and
its neurons: a convolution's operations are over its full output map, before pooling.
Operations are named by the spiking layer they feed (``conv1``: the first
convolution over the input, ..., ``output``: the linear layer), as spike rates are.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F

from ._config import TrialConfig
from ._data import Split
from ._encodings import ENCODINGS
from ._losses import LOSSES, Loss
from ._model import ConvSNN
from ._record import layer_names

#: energy per operation in picojoules, 32-bit floating point at 45 nm (M. Horowitz, "Computing's
#: energy problem (and what we can do about it)", ISSCC 2014, p. 10-14): an add is 0.9 pJ, a
#: multiply 3.7 pJ, so a multiply-accumulate 4.6 pJ and an accumulate 0.9 pJ. Memory access,
#: which dominates on real hardware, is left out: the energy figure is a proxy, not a measurement.
E_MAC_PJ = 4.6
E_AC_PJ = 0.9
#: a neuron firing at more than this fraction of (steps x samples) is saturated
SATURATION_RATE = 0.9
#: the decision step is the first step whose accuracy reaches this fraction of the final accuracy
DECISION_FRACTION = 0.99
#: images per forward pass. The pass keeps each neuron's spike count, not the layers' spikes or membranes, so
#: it holds one layer's spikes of the batch over all steps at a time: some 140 MiB for 250 MNIST images over 25
#: steps with channels [12, 64] (480 MiB for 1,000 images), at the same CPU time (``benchmarks/costs.py``)
COST_BATCH = 250


@dataclass(frozen=True)
class CostMetrics:
    """The inference cost of one trained model on ``n_samples`` images of one split.

    Per-layer fields are tuples in the order of ``layers`` (``conv1`` ... ``output``: the
    spiking layers, as ``objectives.layer_names`` names them). "Per sample" means per
    image over the whole window of ``num_steps`` time steps (one inference).
    """

    #: images the metrics were computed on (a ``max_samples`` cap is part of the metric's identity)
    n_samples: int
    #: time steps per inference
    num_steps: int
    #: spiking layer names
    layers: tuple[str, ...]
    #: neurons per spiking layer (after pooling)
    layer_neurons: tuple[int, ...]
    #: spikes per sample of each layer, summed over its neurons and the steps
    layer_spikes_per_sample: tuple[float, ...]
    #: fraction of zero activations (no spike) over neurons x steps x samples (NeuroBench's
    #: ``ActivationSparsityByLayer``)
    layer_activation_sparsity: tuple[float, ...]
    #: fraction of neurons that never fire on any step of any sample
    layer_dead_fraction: tuple[float, ...]
    #: fraction of neurons whose firing rate over steps and samples exceeds ``SATURATION_RATE`` (0.9)
    layer_saturated_fraction: tuple[float, ...]
    #: effective multiply-accumulates per sample into each layer (nonzero real-valued inputs x
    #: their nonzero fan-out, every step): the first convolution on a real-valued image. Counted at
    #: every step, as NeuroBench's step-by-step wrapper counts them; an implementation that computes
    #: a constant (direct-encoded) image's current once per inference, as the fast engine does,
    #: needs ``1 / num_steps`` of them
    layer_effective_macs: tuple[float, ...]
    #: effective accumulates per sample into each layer (input spikes x their nonzero fan-out, every step)
    layer_effective_acs: tuple[float, ...]
    #: synaptic operations per sample into each layer if every input and weight were nonzero
    layer_dense_synops: tuple[float, ...]
    #: spikes per sample over all layers
    spikes_per_sample: float
    #: fraction of zero activations over all layers, neurons, steps and samples (NeuroBench's
    #: ``ActivationSparsity``)
    activation_sparsity: float
    #: effective multiply-accumulates per sample, all layers (NeuroBench's ``Effective_MACs``)
    effective_macs: float
    #: effective accumulates per sample, all layers (NeuroBench's ``Effective_ACs``)
    effective_acs: float
    #: effective synaptic operations per sample: ``effective_macs + effective_acs``
    synops: float
    #: dense synaptic operations per sample, all layers (NeuroBench's ``Dense``)
    dense_synops: float
    #: bytes of the parameters and buffers of the network (NeuroBench's ``Footprint``)
    footprint_bytes: int
    #: fraction of zero weights of the convolutions and the linear layer, biases left out
    #: (NeuroBench's ``ConnectionSparsity``, not rounded)
    connection_sparsity: float
    #: a PROXY of the energy per inference in microjoules: ``effective_macs * E_MAC_PJ +
    #: effective_acs * E_AC_PJ`` with Horowitz's 45 nm 32-bit float figures (4.6 pJ, 0.9 pJ);
    #: arithmetic only, no memory access, no neuron updates
    energy_proxy_uj: float
    #: accuracy when the output is read after t = 1 ... num_steps steps (the loss's own prediction
    #: rule on the first t steps)
    accuracy_by_step: tuple[float, ...]
    #: accuracy over the full window (``accuracy_by_step[-1]``)
    accuracy: float
    #: the smallest t whose accuracy reaches ``DECISION_FRACTION`` (99 %) of ``accuracy``
    decision_step: int

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-safe values (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CostMetrics:
        """The metrics :meth:`to_dict` wrote."""
        values: dict[str, Any] = {f.name: tuple(d[f.name]) if isinstance(d[f.name], list) else d[f.name]
                                  for f in fields(cls)}
        return cls(**values)


def footprint_bytes(model: ConvSNN) -> int:
    """Bytes of the network's parameters and buffers, as NeuroBench's ``Footprint``
    (``neurobench/metrics/static/footprint.py``) counts them. The snntorch engine's twin
    neurons (``snn_neurons``) hold the same constants again and are left out, so that
    both engines report the same network."""
    modules = [*model.convs, model.fc, *model.neurons]
    tensors = [t for m in modules for t in (*m.parameters(), *m.buffers())]
    return sum(t.numel() * t.element_size() for t in tensors)


def connection_sparsity(model: ConvSNN) -> float:
    """Fraction of zero weights over the convolutions and the linear layer (biases left out),
    as NeuroBench's ``ConnectionSparsity`` (``neurobench/metrics/static/connection_sparsity.py``),
    which rounds the same fraction to four decimals."""
    weights = [m.weight for m in (*model.convs, model.fc)]
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / sum(w.numel() for w in weights)


def fan_out(
    layer: torch.nn.Conv2d | torch.nn.Linear, input_shape: tuple[int, ...], dense: bool = False
) -> torch.Tensor:
    """For every input position of ``layer`` (one sample, ``input_shape``), the number of its
    nonzero weights that read it over all output positions (every weight when ``dense``): the
    sum of the outputs of NeuroBench's binary copy of the layer (``make_binary_copy``, bias
    zeroed) on an input that is 1 at that position alone. Convolutions are ConvSNN's: stride 1, no padding."""
    w = layer.weight.detach()
    w = torch.ones_like(w) if dense else (w != 0).to(w.dtype)
    if isinstance(layer, torch.nn.Linear):
        return w.sum(0)
    out_h, out_w = (n - k + 1 for n, k in zip(input_shape[1:], w.shape[2:]))
    ones = torch.ones((1, w.shape[0], out_h, out_w), dtype=w.dtype, device=w.device)
    return F.conv_transpose2d(ones, w)[0]


def accuracy_by_step(loss: Loss, readout: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Correct predictions ``[T]`` when ``readout`` (the output's spikes or membrane,
    ``[T, B, classes]``) is read after its first t = 1 ... T steps by the loss's rule."""
    return torch.stack([(loss.predict(readout[:t]) == y).sum() for t in range(1, len(readout) + 1)])


def decision_step(accuracy: tuple[float, ...] | list[float]) -> int:
    """The smallest t (from 1) whose accuracy reaches ``DECISION_FRACTION`` of the last one."""
    target = DECISION_FRACTION * accuracy[-1]
    return next(t for t, a in enumerate(accuracy, 1) if a >= target)


class CostMeter:
    """Accumulates the counts of :class:`CostMetrics` over batches of one split:
    ``update`` with each batch's input, labels and ``model(..., count=True)``, then ``result``.
    Everything stays on the model's device until ``result`` (no synchronization per batch)."""

    def __init__(self, model: ConvSNN, cfg: TrialConfig):
        self.model = model
        self.loss = LOSSES[cfg.training.loss]
        self.layers = layer_names(len(model.neurons))
        self.connections = [*model.convs, model.fc]
        self.steps = cfg.model.num_steps
        self.n = 0
        self.spike_counts: list[torch.Tensor] = []
        #: nonzero inputs per position of the first layer, of batches that were real-valued (MACs) and spikes (ACs)
        self.input_counts: dict[str, torch.Tensor] = {}
        self.correct = torch.zeros(self.steps, dtype=torch.long, device=_device(model))

    def update(self, x: torch.Tensor, y: torch.Tensor, inputs: torch.Tensor, out) -> None:
        """Count one batch: ``x`` the images, ``inputs`` what the network was fed (``x`` itself
        under a static encoding, else ``[T, B, ...]``), ``out`` its recorded output."""
        static = inputs.dim() == x.dim()
        # nonzero inputs per position over steps and samples: a static image is fed at every step
        nonzero = (inputs != 0).sum(0).to(torch.float64) * (self.steps if static else 1)
        if not static:
            nonzero = nonzero.sum(0)
        # NeuroBench's rule (binary_inputs): inputs holding only 0 and +-1 are spikes (accumulates)
        spiking = ((inputs == 0) | (inputs.abs() == 1)).all()
        # both kinds are kept, one of them zero, so that nothing waits for the device to know which
        for kind, share in (("macs", ~spiking), ("acs", spiking)):
            counted = nonzero * share
            self.input_counts[kind] = self.input_counts[kind] + counted if kind in self.input_counts else counted
        counts = out.counts
        self.spike_counts = [a + b for a, b in zip(self.spike_counts, counts)] if self.spike_counts else counts
        readout = out.spikes if self.loss.on == "spikes" else out.mem
        self.correct += accuracy_by_step(self.loss, readout, y)
        self.n += len(y)

    def result(self) -> CostMetrics:
        """The metrics of every batch counted so far."""
        n, steps, model = self.n, self.steps, self.model
        counts = [c.cpu() for c in self.spike_counts]
        first = {kind: c.cpu() for kind, c in self.input_counts.items()}
        # operations into layer i: its input's nonzero count per position times that position's fan-out
        macs, acs, dense = [], [], []
        for i, layer in enumerate(self.connections):
            shape = tuple(counts[i - 1].shape if i else first["acs"].shape)
            if isinstance(layer, torch.nn.Linear):
                shape = (torch.Size(shape).numel(),)
            fan = fan_out(layer, shape).cpu().to(torch.float64).flatten()
            inputs = first if i == 0 else {"macs": torch.zeros_like(counts[i - 1]), "acs": counts[i - 1]}
            macs.append(float(inputs["macs"].flatten() @ fan) / n)
            acs.append(float(inputs["acs"].flatten() @ fan) / n)
            dense.append(steps * float(fan_out(layer, shape, dense=True).sum()))
        effective = [m + a for m, a in zip(macs, acs)]
        neurons = [c.numel() for c in counts]
        spikes = [float(c.sum()) for c in counts]
        acc = tuple((self.correct.cpu().double() / n).tolist())
        return CostMetrics(
            n_samples=n,
            num_steps=steps,
            layers=tuple(self.layers),
            layer_neurons=tuple(neurons),
            layer_spikes_per_sample=tuple(s / n for s in spikes),
            layer_activation_sparsity=tuple(1 - s / (k * steps * n) for s, k in zip(spikes, neurons)),
            layer_dead_fraction=tuple(float((c == 0).double().mean()) for c in counts),
            layer_saturated_fraction=tuple(float((c / (steps * n) > SATURATION_RATE).double().mean()) for c in counts),
            layer_effective_macs=tuple(macs),
            layer_effective_acs=tuple(acs),
            layer_dense_synops=tuple(dense),
            spikes_per_sample=sum(spikes) / n,
            activation_sparsity=1 - sum(spikes) / (sum(neurons) * steps * n),
            effective_macs=sum(macs),
            effective_acs=sum(acs),
            synops=sum(effective),
            dense_synops=sum(dense),
            footprint_bytes=footprint_bytes(model),
            connection_sparsity=connection_sparsity(model),
            energy_proxy_uj=(sum(macs) * E_MAC_PJ + sum(acs) * E_AC_PJ) * 1e-6,
            accuracy_by_step=acc,
            accuracy=acc[-1],
            decision_step=decision_step(acc),
        )


@torch.no_grad()
def cost_metrics(model: ConvSNN, cfg: TrialConfig, split: Split, max_samples: int | None = None) -> CostMetrics:
    """The cost metrics of ``model`` (trained for ``cfg``) on the first ``max_samples`` images of
    ``split`` (all when ``None``), in one pass of batches without gradient. Rate-encoded inputs
    are drawn from the generator seeded with ``cfg.training.seed`` (the caller's random state is
    left as it was), so the metrics of a model are reproducible."""
    n = len(split) if max_samples is None else min(max_samples, len(split))
    if n < 1:
        raise ValueError(f"cost metrics need at least one image, but got max_samples={max_samples} of {len(split)}")
    encoding = ENCODINGS[cfg.model.encoding]
    meter = CostMeter(model, cfg)
    device = _device(model)
    was_training = model.training
    model.eval()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        _generator(device).manual_seed(cfg.training.seed)
        for i in range(0, n, COST_BATCH):
            x, y = split.x[i : min(i + COST_BATCH, n)], split.y[i : min(i + COST_BATCH, n)]
            inputs = encoding.encode(x, cfg.model.num_steps)
            out = model(inputs, cfg.model.num_steps, static=encoding.static, count=True)
            meter.update(x, y, inputs, out)
    model.train(was_training)
    return meter.result()


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _generator(device: torch.device) -> torch.Generator:
    """The default random generator of ``device`` (the one rate encoding draws from there)."""
    if device.type == "cuda":
        return torch.cuda.default_generators[device.index if device.index is not None else torch.cuda.current_device()]
    return torch.default_generator
