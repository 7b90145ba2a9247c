"""The original code's convolutional SNN: [Conv -> MaxPool(2) -> neuron] x blocks -> Linear -> output neuron.

Two engines compute the same mathematics:

- ``fast`` runs the network layer by layer over a window of time steps. Convolutions
  and the linear layer are stateless, so they run on every step at once (time
  folded into the batch; on a CPU one step at a time, channels-last), and under a
  static (direct) encoding the first convolution sees the same image at every
  step, so it runs once per window. Only each neuron's recurrence stays a loop
  over time, as one autograd node per layer and window (``Neuron.run``).
- ``snntorch`` is the tutorial's step loop with snntorch's own neuron classes: at
  each step, every layer in turn. It is the reference the fast engine is checked against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ._config import ModelConfig
from ._errors import ConfigError
from ._neurons import NEURONS, Neuron, whole_window
from ._surrogates import SURROGATES

State = list[tuple[torch.Tensor, ...] | None]


@dataclass
class Output:
    """One window of time steps: output spikes and membrane ``[T, B, classes]``, the
    state to continue from, and each spiking layer's mean spike rate (detached)."""

    spikes: torch.Tensor
    mem: torch.Tensor
    state: State
    rates: list[torch.Tensor]
    #: per spiking layer ``(spikes [T, ...], membrane [T, ...])`` when ``record=True``
    trace: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    #: per spiking layer, each neuron's spikes summed over the steps and the batch (float64) when ``count=True``
    counts: list[torch.Tensor] | None = None


def make_neuron(cfg: ModelConfig) -> Neuron:
    """One layer of ``cfg.neuron`` with the config's parameters, gain and surrogate gradient."""
    cls = NEURONS[cfg.neuron]
    spike_fn = SURROGATES[cfg.surrogate].build(cfg.surrogate_scale, cfg.surrogate_width, **cfg.surrogate_args)
    params = {name: getattr(cfg, name) for name in cls.spec.params}
    return cls(spike_fn, threshold=cfg.threshold, reset_mechanism=cfg.reset_mechanism, gain=cfg.gain, **params)


class ConvSNN(nn.Module):
    """The conv-SNN for ``cfg`` on images of ``input_shape`` (C, H, W), with ``num_classes`` outputs."""

    def __init__(self, cfg: ModelConfig, input_shape=(1, 28, 28), num_classes: int = 10, engine: str = "fast"):
        super().__init__()
        in_ch, h, w = input_shape
        convs = []
        for out_ch in cfg.channels:
            h, w = (h - cfg.kernel_size + 1) // 2, (w - cfg.kernel_size + 1) // 2
            if h < 1 or w < 1:
                raise ConfigError(
                    "model.channels",
                    list(cfg.channels),
                    f"{len(cfg.channels)} conv blocks of kernel {cfg.kernel_size} shrink a "
                    f"{input_shape[1]}x{input_shape[2]} image to nothing; use fewer blocks or a smaller kernel",
                )
            convs.append(nn.Conv2d(in_ch, out_ch, cfg.kernel_size))
            in_ch = out_ch
        self.convs = nn.ModuleList(convs)
        self.fc = nn.Linear(in_ch * h * w, num_classes)
        # the hidden layers and the output layer are all neurons of the configured model
        self.neurons = nn.ModuleList(make_neuron(cfg) for _ in range(len(convs) + 1))
        self.engine = engine
        if engine == "snntorch":
            self.snn_neurons = nn.ModuleList(self.neuron(i).to_snntorch() for i in range(len(self.neurons)))

    def neuron(self, i: int) -> Neuron:
        """The ``i``-th spiking layer (the last is the output layer)."""
        return cast(Neuron, self.neurons[i])

    def forward(
        self,
        x: torch.Tensor,
        num_steps: int,
        state: State | None = None,
        static: bool = True,
        record: bool = False,
        count: bool = False,
    ) -> Output:
        """Run ``num_steps`` time steps from ``state`` (zeros when ``None``).

        ``x`` is one image batch ``[B, C, H, W]`` fed at every step when ``static``,
        else ``[T, B, C, H, W]`` with ``T == num_steps``. ``record`` also returns
        every layer's spikes and membrane (for the report's traces and rasters);
        ``count`` each neuron's spike count (for the cost metrics), which keeps no
        layer's spikes past the next layer.
        """
        state = state if state is not None else [None] * len(self.neurons)
        if self.engine == "snntorch":
            return self._steps(x, num_steps, state, static, record, count)
        return self._layers(x, num_steps, state, static, record, count)

    def _layers(self, x, num_steps, state, static, record, count=False):
        new_state: State = []
        rates: list[torch.Tensor] = []
        trace: list[tuple[torch.Tensor, torch.Tensor]] = []
        counts: list[torch.Tensor] = []
        h = x
        for i, conv in enumerate(self.convs):
            if static:
                # the same image at every step: one convolution serves the whole window
                spk, mem, s = self.neuron(i).run(_pool(conv(h)), state[i], num_steps, record)
                static = False
            else:
                current = self._per_step(conv, h)
                spk, mem, s = self.neuron(i).run(current, state[i], record_mem=record)
            new_state.append(s)
            rates.append(self._rate(spk))
            if mem is not None:  # recorded
                trace.append((spk.detach(), mem.detach()))
            if count:
                counts.append(_count(spk))
            h = spk
        spk, mem, s = self.neuron(-1).run(self.fc(h.flatten(2)), state[-1], record_mem=True)
        out_mem = cast(torch.Tensor, mem)  # record_mem=True: always recorded
        new_state.append(s)
        rates.append(self._rate(spk))
        if record:
            trace.append((spk.detach(), out_mem.detach()))
        if count:
            counts.append(_count(spk))
        return Output(spk, out_mem, new_state, rates, trace if record else None, counts if count else None)

    def _rate(self, spikes: torch.Tensor) -> torch.Tensor:
        """A spiking layer's mean spike rate (detached): one number for the layer (a fused
        trial array, which holds several networks side by side, gives one per member)."""
        return spikes.detach().mean()

    def _per_step(self, conv, h):
        """``conv`` then pooling on ``[T, B, ...]``. Off the CPU, time folds into the batch (one
        launch); on a CPU, large folded batches run slower than step by step (cache), so
        there it goes in chunks of one step: the neurons' rule for a window's work."""
        steps, batch = h.shape[:2]
        if whole_window(h):
            return F.max_pool2d(conv(h.flatten(0, 1)), 2).unflatten(0, (steps, batch))
        # unbind, not h[t]: the backward of each h[t] would zero-fill a whole [T, ...] tensor.
        # The neurons keep each step's layout, so spikes reach the next convolution channels-last.
        return torch.stack([_pool(conv(step.contiguous(memory_format=torch.channels_last))) for step in h.unbind(0)])

    def _steps(self, x, num_steps, state, static, record, count=False):
        state = list(state)
        inputs = [x] * num_steps if static else x.unbind(0)
        n_layers = len(self.snn_neurons)
        spikes: list[list[torch.Tensor]] = [[] for _ in range(n_layers)]
        mems: list[list[torch.Tensor]] = [[] for _ in range(n_layers)]
        for t in range(num_steps):
            h = inputs[t]
            for i, neuron in enumerate(self.snn_neurons):
                if i < len(self.convs):
                    current = F.max_pool2d(self.convs[i](h), 2)
                else:
                    current = self.fc(h.flatten(1))
                if state[i] is None:
                    state[i] = self.neuron(i).init_state(current)
                # snntorch's classes take and return the state in the same order: (spk, *state);
                # they take the driven current (the input itself under the raw gain)
                h, *new = neuron(self.neuron(i).drive(current), *state[i])
                state[i] = tuple(new)
                spikes[i].append(h)
                mems[i].append(new[-1])
        spk_layers = [torch.stack(s) for s in spikes]
        mem_out = torch.stack(mems[-1])
        rates = [s.detach().mean() for s in spk_layers]
        trace = [(s.detach(), torch.stack(m).detach()) for s, m in zip(spk_layers, mems)] if record else None
        counts = [_count(s.detach()) for s in spk_layers] if count else None
        return Output(spk_layers[-1], mem_out, state, rates, trace, counts)


def _count(spikes: torch.Tensor) -> torch.Tensor:
    """Each neuron's spikes ``[T, B, ...]`` summed over the steps and the batch, in float64. Time first,
    then the batch: one reduction over both dimensions of a channels-last tensor runs some 20x slower
    on a CPU; a neuron's count over the steps (at most T) is exact in float32."""
    return spikes.detach().sum(0).sum(0, dtype=torch.float64)


def _pool(x: torch.Tensor) -> torch.Tensor:
    """2x2 max pooling. On a CPU, channels-last: pooling small NCHW maps (8x8) runs
    about 20x slower there, and a channels-last convolution output makes the next
    convolution channels-last too (about 2x faster forward on this network). The
    values are the same in either layout."""
    if x.device.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
    return F.max_pool2d(x, 2)


def detach_state(state: State) -> State:
    """The same state cut from the graph: truncated backprop starts each window here."""
    return [None if s is None else tuple(v.detach() for v in s) for s in state]


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
