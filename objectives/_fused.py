"""Fused trial arrays: K trials of one architecture trained as one wider model (HFTA: Wang et al.,
"Horizontally Fused Training Array", MLSys 2021).

The members of an array share everything that shapes the computation (neuron, backprop method
and window, channels, kernel size, time steps, batch size, optimizer kind, loss, encoding, dataset,
device, and whether the surrogate's forward pass draws the spike: :func:`array_key`) and may differ
in the values a search draws (:data:`MEMBER_FIELDS`: learning rate, beta, alpha, threshold,
surrogate kind, shape and width, seed, epochs, patience): the cells of a grid over surrogates train
as one array per neuron and backprop method. The K networks become one:

- each convolution is one grouped convolution (``groups=K``): member k's images are the k-th
  block of the input channels and its filters the k-th block of the weight, so no member sees
  another's activations;
- the linear layer is one batched matrix product over ``[K, out, in]`` weights (on a CPU both run
  member by member, each on its own block, so that the sums are the lone run's to the bit);
- each neuron layer is one layer of the same neuron class whose constants (beta, alpha, threshold,
  the matched gain's input scale and what the neuron derives from them, taken from each member's
  own neuron, so bit for bit its values) are tensors over the feature axis, member k's on its
  block; where members differ in the surrogate's kind, shape or width, member k's block goes through
  its own neuron's surrogate (:func:`~objectives._surrogates.side_by_side`);
- each member's loss is its own (snntorch's criterion per sample, averaged over its own batch) and
  the array minimises their sum, so the gradient on member k's weights is that of its loss alone;
  the optimizer steps after every window or once per batch, as ``training.step_every`` says;
- the optimizer applies torch.optim's update to each member with its own learning rate
  (:data:`FUSED_OPTIMIZERS`; Adam's update does not depend on the gradient's scale, so scaling
  gradients cannot stand in for a learning rate).

Member k starts from the weights ``torch.manual_seed(seed_k); build_model(cfg_k)`` gives, takes
its batches in the order its own ``torch.Generator().manual_seed(seed_k)`` draws (as
:func:`~objectives.train` does) and, under rate encoding, its Poisson spikes from a generator in
the state its lone run's global generator would be in. On a CPU its weights then are its lone
run's bit for bit; off the CPU, where the grouped convolution and the batched product sum in
another order, its gradients equal the lone run's to float rounding (``tests/test_fused.py``),
and Adam-type optimizers turn such last-bit differences in near-zero gradients into runs that
differ as two GPU runs of one trial with different kernels do. The random draws of a surrogate
(the stochastic spike operator's noise, escape noise's spikes) are made for the whole array at
once: the same distribution as alone, not the same numbers.

What a member's weights cost (:func:`~objectives.cost_metrics`: each epoch's ``val_costs``, the
result's ``costs``) is measured on its own :class:`ConvSNN` holding its weights, as its lone run
measures it: the validation accuracy a study reads is that pass's, so it is the lone run's.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from ._config import ModelConfig, TrialConfig
from ._costs import CostMetrics, cost_metrics
from ._data import Data, Split, load
from ._encodings import ENCODINGS
from ._errors import ConfigError, TrainingDiverged
from ._losses import LOSSES
from ._model import ConvSNN, count_parameters, detach_state
from ._neurons import Neuron, whole_window
from ._optimizers import OPTIMIZERS
from ._record import EpochMetrics
from ._specs import BACKPROPS, SURROGATE_SPECS
from ._surrogates import side_by_side
from ._train import TrainResult, build_model, resolve_device

#: config fields in which the members of one array may differ; they share every other field
MEMBER_FIELDS: dict[str, tuple[str, ...]] = {
    "model": ("beta", "alpha", "threshold", "surrogate", "surrogate_args", "surrogate_width"),
    "training": ("lr", "seed", "epochs", "early_stopping_patience"),
}


#: what members whose surrogates differ in kind must share: whether the forward pass draws the spike (escape
#: noise) or is the step; the stepping kinds mix in one array, each member's block through its own surrogate
_DRAWS = "surrogate draws its spikes"


def _shared(cfg: TrialConfig) -> dict:
    shared = cfg.resolved().to_dict()
    for section, names in MEMBER_FIELDS.items():
        for name in names:
            del shared[section][name]
    shared["model"][_DRAWS] = SURROGATE_SPECS[cfg.model.surrogate].stochastic
    return shared


def array_key(cfg: TrialConfig) -> str:
    """What a trial must share with the other members of its array: trials with equal keys can
    train as one array (the resolved config without :data:`MEMBER_FIELDS`, as JSON)."""
    return json.dumps(_shared(cfg), sort_keys=True)


def check_array(cfgs: Sequence[TrialConfig]) -> None:
    """Raise :class:`ConfigError` unless ``cfgs`` (at least one) can train as one array: equal
    :func:`array_key`, the ``fast`` engine."""
    if not cfgs:
        raise ConfigError("array", [], "an array needs at least one member")
    first = _shared(cfgs[0])
    for cfg in cfgs[1:]:
        shared = _shared(cfg)
        # the dataset's resolved defaults follow the model's fields (normalize: the encoding): name those first
        for section in sorted(shared, key=lambda section: section == "dataset"):
            for name, value in shared[section].items():
                if name == _DRAWS and value != first[section][name]:
                    raise ConfigError("model.surrogate", cfg.model.surrogate,
                                      f"a surrogate whose forward pass {'draws' if value else 'is the step'} cannot "
                                      f"share an array with the first member's {cfgs[0].model.surrogate!r}")
                if value != first[section][name]:
                    raise ConfigError(
                        f"{section}.{name}", value,
                        f"the members of one array share it, and the first member has {first[section][name]!r}",
                    )
    if cfgs[0].training.engine != "fast":
        raise ConfigError("training.engine", cfgs[0].training.engine, "arrays run the fast engine only")


def default_array_size(device: torch.device) -> int:
    """Members per array when a study does not say: 1 on a CPU, where a fused array trains no
    faster than its trials one after another (``benchmarks/study_throughput.py``); 16 on a GPU,
    issue 16's design point, where one trial leaves the device mostly idle."""
    return 1 if device.type == "cpu" else 16


# ----------------------------------------------------------------------------- the fused network


class FusedConv(nn.Module):
    """K convolutions of one shape: weight ``[K, out, in, k, k]``, bias ``[K, out]``; member k's
    channels are the k-th block of the input's and of the output's.

    Off the CPU (:func:`whole_window`: where a launch costs more than its arithmetic) they run as
    one grouped convolution. On a CPU they run member by member, each on its own block in the
    layout the lone network gives it: one launch buys nothing there, and the grouped kernel sums
    the weight gradient in another order, whose last-bit differences Adam-type optimizers magnify
    in gradients near zero (``eps``), so members would drift from their lone runs. ``grouped``
    overrides the choice.
    """

    def __init__(self, convs: Sequence[nn.Conv2d], grouped: bool | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.stack([c.weight.detach() for c in convs]))
        self.bias = nn.Parameter(torch.stack([cast(torch.Tensor, c.bias).detach() for c in convs]))
        self.grouped = grouped

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        members = len(self.weight)
        if self.grouped if self.grouped is not None else whole_window(x):
            return F.conv2d(x, self.weight.flatten(0, 1), self.bias.flatten(), groups=members)
        channels_last = x.is_contiguous(memory_format=torch.channels_last)
        blocks = [_as_lone(b, channels_last) for b in x.chunk(members, 1)]
        return torch.cat([F.conv2d(b, w, c) for b, w, c in zip(blocks, self.weight, self.bias)], 1)


def _as_lone(block: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A member's block of a fused input in the layout its lone network's convolution gets: the
    lone input is contiguous, made channels-last where the fused one is; a one-channel image
    counts as channels-last already and keeps its strides (the kernel picks its algorithm by them)."""
    if channels_last and block.shape[1] > 1:
        return block.contiguous(memory_format=torch.channels_last)
    return block.contiguous()


class FusedLinear(nn.Module):
    """K linear layers of one shape: weight ``[K, out, in]``, bias ``[K, out]``; the last axis of input
    and output holds member k's features as its k-th block. Off the CPU one batched matrix product; on
    a CPU member by member, for :class:`FusedConv`'s reasons (the batched product sums the bias gradient
    over the batch in another order). ``grouped`` overrides the choice."""

    def __init__(self, linears: Sequence[nn.Linear], grouped: bool | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in linears]))
        self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in linears]))
        self.grouped = grouped

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        members, out_features, in_features = self.weight.shape
        if self.grouped if self.grouped is not None else whole_window(x):
            per_member = x.reshape(-1, members, in_features).transpose(0, 1)
            y = torch.baddbmm(self.bias.unsqueeze(1), per_member, self.weight.transpose(1, 2))
            return y.transpose(0, 1).reshape(*x.shape[:-1], members * out_features)
        blocks = x.chunk(members, -1)
        return torch.cat([F.linear(b.contiguous(), w, c) for b, w, c in zip(blocks, self.weight, self.bias)], -1)


def _block_shape(dims: int) -> tuple[int, ...]:
    """The shape of a per-feature constant over a layer whose feature axis is followed by ``dims - 1`` others."""
    return (-1, *[1] * (dims - 1))


def _stack_neurons(neurons: Sequence[Neuron], width: int, dims: int, same_surrogate: bool) -> Neuron:
    """One layer of ``neurons``' class holding them side by side, ``width`` features each: every
    constant the members differ in becomes a tensor with member k's value over its block, and
    unless their surrogates are the same (``same_surrogate``), member k's block goes through its own."""
    fused = copy.deepcopy(neurons[0])
    for name, value in neurons[0].named_buffers():
        values = [n.get_buffer(name) for n in neurons]
        if any(not torch.equal(v, value) for v in values[1:]):
            setattr(fused, name, torch.stack(values).repeat_interleave(width).view(_block_shape(dims)))
    scales = [n.input_scale for n in neurons]
    if any(s != scales[0] for s in scales[1:]):
        # a float32 tensor: the value a float32 current is multiplied by when the scale is a Python float
        per_member = torch.tensor(scales, dtype=torch.get_default_dtype(), device=value.device)
        fused.input_scale = per_member.repeat_interleave(width).view(_block_shape(dims))
    if not same_surrogate:
        fused.spike_fn = side_by_side([n.spike_fn for n in neurons], -dims)
        fused.spike_derivative = fused.spike_fn.derivative
        fused._sample = getattr(fused.spike_fn, "sample", None)
    # the neuron skips multiplying by a threshold of 1; a block of thresholds is 1 only if every member's is
    fused._unit_threshold = all(n._unit_threshold for n in neurons)
    return fused


def _surrogate_key(cfg: ModelConfig) -> str:
    """What a member's surrogate is built from (the scale the array shares)."""
    return json.dumps([cfg.surrogate, cfg.resolved_surrogate_args, cfg.surrogate_width], sort_keys=True)


class FusedConvSNN(ConvSNN):
    """K conv-SNNs of one architecture side by side. ``forward`` is :class:`ConvSNN`'s: its input's
    channel axis holds the members' images as blocks (``[B, K*C, H, W]``), its outputs' last axis
    the members' classes (``[T, B, K*classes]``), and each layer's spike rate is one per member."""

    def __init__(self, members: Sequence[ConvSNN], cfgs: Sequence[ModelConfig]):
        nn.Module.__init__(self)
        self.engine = "fast"
        self.convs = nn.ModuleList(
            FusedConv([cast(nn.Conv2d, m.convs[i]) for m in members]) for i in range(len(members[0].convs))
        )
        # ConvSNN's forward calls ``fc`` on the features: a FusedLinear takes them as a Linear does
        self.fc = FusedLinear([m.fc for m in members])  # type: ignore[assignment]
        # the members' own neurons (plain lists, not submodules): their constants, and their entries in a state dict
        self.member_neurons = [[m.neuron(i) for i in range(len(m.neurons))] for m in members]
        self.member_cfgs = list(cfgs)
        self.member_keys = list(members[0].state_dict())
        self._stack()

    @property
    def members(self) -> int:
        return len(self.member_cfgs)

    def _stack(self) -> None:
        widths = [layer.weight.shape[1] for _, layer in self._layers_with_weights()]
        dims = [3] * len(self.convs) + [1]  # [K*C, H, W] after a convolution, [K*classes] after the linear layer
        same_surrogate = len({_surrogate_key(c) for c in self.member_cfgs}) == 1
        self.neurons = nn.ModuleList(
            _stack_neurons([n[i] for n in self.member_neurons], w, d, same_surrogate)
            for i, (w, d) in enumerate(zip(widths, dims))
        )

    def _rate(self, spikes: torch.Tensor) -> torch.Tensor:
        # Spike counts are whole numbers, exact in float32 below 2^24 whatever the order of the sum: this
        # is the lone run's mean (a sum, then a division) to the bit. The sum runs in memory order: over a
        # CPU's channels-last steps, reducing across the innermost axis is some 20 times slower.
        s = spikes.detach()
        if s.stride(2) == 1:
            counts = s.movedim(2, -1).reshape(-1, s.shape[2]).sum(0).view(self.members, -1).sum(1)
        else:
            per_member = s.unflatten(2, (self.members, -1))
            counts = per_member.sum(dim=[d for d in range(per_member.dim()) if d != 2])
        return counts / (s.numel() // self.members)

    def _layers_with_weights(self) -> list[tuple[str, FusedConv | FusedLinear]]:
        convs = [(f"convs.{i}", cast(FusedConv, c)) for i, c in enumerate(self.convs)]
        return [*convs, ("fc", cast(FusedLinear, self.fc))]

    def member_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Member ``k``'s weights as the state dict of its own :class:`ConvSNN` (a copy)."""
        out = {}
        for prefix, module in self._layers_with_weights():
            out[f"{prefix}.weight"] = module.weight.detach()[k].clone()
            out[f"{prefix}.bias"] = module.bias.detach()[k].clone()
        for i, neuron in enumerate(self.member_neurons[k]):
            for name, value in neuron.state_dict().items():
                out[f"neurons.{i}.{name}"] = value.clone()
        return {key: out[key] for key in self.member_keys}

    def load_member_state_dicts(self, state_dicts: Sequence[dict[str, torch.Tensor]]) -> None:
        """Set every member's weights from its own :class:`ConvSNN` state dict (one per member, in order)."""
        with torch.no_grad():
            for prefix, module in self._layers_with_weights():
                module.weight.copy_(torch.stack([sd[f"{prefix}.weight"] for sd in state_dicts]))
                module.bias.copy_(torch.stack([sd[f"{prefix}.bias"] for sd in state_dicts]))

    def keep(self, slots: Sequence[int]) -> None:
        """Only the members at ``slots`` remain (compaction): every weight and constant is sliced to them."""
        index = torch.tensor(list(slots), dtype=torch.long, device=self.fc.weight.device)
        for _, module in self._layers_with_weights():
            module.weight = nn.Parameter(module.weight.detach().index_select(0, index))
            module.bias = nn.Parameter(module.bias.detach().index_select(0, index))
        self.member_neurons = [self.member_neurons[s] for s in slots]
        self.member_cfgs = [self.member_cfgs[s] for s in slots]
        self._stack()


def _fold(out: torch.Tensor, members: int) -> torch.Tensor:
    """``[T, B, K*classes]`` -> ``[T, K*B, classes]``: the members' outputs as one batch, member by member."""
    return out.unflatten(2, (members, -1)).transpose(1, 2).flatten(1, 2)


# ----------------------------------------------------------------------------- the fused optimizers


class FusedOptimizer:
    """One ``torch.optim`` update rule (its ``defaults``) applied to each member of ``[K, ...]``
    parameters with its own learning rate (``lr``: ``[K]``, float64 as torch.optim computes step
    sizes in Python floats). Each update computes what the torch.optim optimizer computes for that
    member alone (CPU, single-tensor path), step for step. A stopped member's learning rate is 0:
    its weights stay as they are."""

    def __init__(self, params, lr: torch.Tensor, defaults: dict):
        self.params = list(params)
        self.lr = lr
        self.active = torch.ones(len(lr), dtype=torch.bool, device=lr.device)
        self.defaults = defaults
        self.state: list[dict[str, torch.Tensor]] = [{} for _ in self.params]
        self.steps = [0] * len(self.params)
        self.check(defaults)

    @classmethod
    def check(cls, defaults: dict) -> None:
        """Raise ``NotImplementedError`` for an option of the torch.optim optimizer this rule does not compute."""

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        lr = torch.where(self.active, self.lr, 0.0)
        for i, (p, state) in enumerate(zip(self.params, self.state)):
            if p.grad is not None:
                self.steps[i] += 1
                self._update(p, p.grad, state, self.steps[i], lr)

    def _update(self, p: torch.Tensor, grad: torch.Tensor, state: dict, step: int, lr: torch.Tensor) -> None:
        raise NotImplementedError

    def stop(self, slot: int) -> None:
        """Member ``slot`` takes no more steps."""
        self.active[slot] = False

    def keep(self, slots: Sequence[int], params) -> None:
        """Only the members at ``slots`` remain; ``params`` are the model's parameters sliced to them."""
        index = torch.tensor(list(slots), dtype=torch.long, device=self.lr.device)
        self.params = list(params)
        self.lr = self.lr.index_select(0, index)
        self.active = self.active.index_select(0, index)
        self.state = [{name: v.index_select(0, index) for name, v in s.items()} for s in self.state]


def _per_member(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``[K]`` values as ``like``'s dtype, shaped to broadcast over ``[K, ...]``. Casting a float64 to
    float32 rounds as torch.optim's kernels round the Python float they are given."""
    return values.to(like.dtype).view(-1, *[1] * (like.dim() - 1))


def _require(defaults: dict, **expected) -> None:
    for name, value in expected.items():
        if defaults.get(name, value) != value:
            raise NotImplementedError(f"fused optimizer: {name}={defaults[name]!r} is not implemented (only {value!r})")


class FusedAdamax(FusedOptimizer):
    """``torch.optim.Adamax`` per member."""

    @classmethod
    def check(cls, defaults):
        _require(defaults, weight_decay=0, maximize=False)

    def _update(self, p, grad, state, step, lr):
        beta1, beta2 = self.defaults["betas"]
        if not state:
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_inf"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        exp_avg, exp_inf = state["exp_avg"], state["exp_inf"]
        exp_avg.lerp_(grad, 1 - beta1)
        torch.maximum(exp_inf.mul_(beta2), grad.abs().add_(self.defaults["eps"]), out=exp_inf)
        clr = lr / (1 - beta1**step)
        # addcdiv_(exp_avg, exp_inf, value=-clr) on a CPU computes p + (-clr * exp_avg) / exp_inf
        p.add_(exp_avg.mul(_per_member(-clr, p)).div_(exp_inf))


class FusedAdam(FusedOptimizer):
    """``torch.optim.Adam`` and ``AdamW`` (decoupled weight decay) per member."""

    @classmethod
    def check(cls, defaults):
        _require(defaults, amsgrad=False, maximize=False)
        if defaults["weight_decay"] and not defaults.get("decoupled_weight_decay"):
            raise NotImplementedError("fused optimizer: Adam's L2 weight decay is not implemented (AdamW's is)")

    def _update(self, p, grad, state, step, lr):
        beta1, beta2 = self.defaults["betas"]
        weight_decay = self.defaults["weight_decay"]
        if weight_decay:
            p.mul_(_per_member(1 - lr * weight_decay, p))
        if not state:
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step_size = lr / (1 - beta1**step)
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.defaults["eps"])
        p.add_(exp_avg.mul(_per_member(-step_size, p)).div_(denom))


class FusedSGD(FusedOptimizer):
    """``torch.optim.SGD`` with momentum per member."""

    @classmethod
    def check(cls, defaults):
        _require(defaults, weight_decay=0, dampening=0, nesterov=False, maximize=False)

    def _update(self, p, grad, state, step, lr):
        momentum = self.defaults["momentum"]
        if momentum:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = grad.detach().clone()
            else:
                state["momentum_buffer"].mul_(momentum).add_(grad)
            grad = state["momentum_buffer"]
        # the same kernel arithmetic as add_(grad, alpha=-lr), with one alpha per member
        p.addcmul_(grad, _per_member(-lr, p))


#: the update rule of each optimizer in ``OPTIMIZERS``, with its settings read from the optimizer that builds
FUSED_OPTIMIZERS: dict[str, type[FusedOptimizer]] = {
    "adamax": FusedAdamax,
    "adam": FusedAdam,
    "adamw": FusedAdam,
    "sgd": FusedSGD,
}


def make_fused_optimizer(kind: str, params, lr: torch.Tensor) -> FusedOptimizer:
    """``OPTIMIZERS[kind]``'s update per member of ``params`` (``[K, ...]``) with learning rates ``lr`` (``[K]``)."""
    reference = OPTIMIZERS[kind]([torch.zeros(1, requires_grad=True)], 1.0)
    return FUSED_OPTIMIZERS[kind](params, lr, reference.defaults)


# ----------------------------------------------------------------------------- encodings and losses


def _fork_default_generator(device: torch.device) -> torch.Generator:
    """A generator in the state of ``device``'s global generator now."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        default = torch.cuda.default_generators[index]
    else:
        default = torch.default_generator
    generator = torch.Generator(device)
    generator.set_state(default.get_state())
    return generator


def _poisson(x: torch.Tensor, num_steps: int, generator: torch.Generator) -> torch.Tensor:
    # snntorch.spikegen.rate(x, num_steps), drawing from ``generator``
    return torch.bernoulli(torch.clamp(x.repeat(num_steps, *[1] * x.dim()), min=0, max=1), generator=generator)


#: each encoding of ``ENCODINGS`` for an array: ``[K, B, C, H, W]`` (member k's images) -> the network's
#: input, ``[B, K*C, H, W]`` (static) or ``[T, B, K*C, H, W]``, member k's encoding drawn from its generator
FUSED_ENCODINGS: dict[str, Callable[[torch.Tensor, int, Sequence[torch.Generator]], torch.Tensor]] = {
    "direct": lambda x, num_steps, generators: x.transpose(0, 1).flatten(1, 2),
    "rate": lambda x, num_steps, generators: torch.cat([_poisson(xk, num_steps, g) for xk, g in zip(x, generators)], 2),
}


def _criterion(loss: str):
    """The loss's snntorch criterion, one value per sample (snntorch's criteria read ``reduction`` when called)."""
    criterion: Any = LOSSES[loss].make()
    criterion.reduction = "none"
    return criterion


# ----------------------------------------------------------------------------- one array


class TrialArray:
    """K trials of one architecture (``cfgs``, see :func:`check_array`) as one :class:`FusedConvSNN`
    with its :class:`FusedOptimizer`, on ``data``'s device. Member ``k`` of the array is ``cfgs[k]``
    until :meth:`keep` drops members; the array's members are then numbered by their new slots."""

    def __init__(self, cfgs: Sequence[TrialConfig], data: Data):
        check_array(cfgs)
        self.cfgs = list(cfgs)
        self.device = resolve_device(cfgs[0].training.device)
        #: each member's own network (its weights are copied in to measure what they cost)
        self.lone: list[ConvSNN] = []
        self.generators: list[torch.Generator] = []
        for cfg in cfgs:
            # what train() does before its first batch, so each member starts where its lone run starts
            torch.manual_seed(cfg.training.seed)
            self.lone.append(build_model(cfg, data).to(self.device))
            self.generators.append(_fork_default_generator(self.device))
        self.n_params = count_parameters(self.lone[0])
        self.model = FusedConvSNN(self.lone, [c.model for c in cfgs])
        lr = torch.tensor([c.training.lr for c in cfgs], dtype=torch.float64, device=self.device)
        self.optimizer = make_fused_optimizer(cfgs[0].training.optimizer, self.model.parameters(), lr)
        shared = cfgs[0]
        self.num_steps = shared.model.num_steps
        self.window = BACKPROPS[shared.training.backprop](shared)
        self.per_window = shared.training.step_every == "window"
        self.static = ENCODINGS[shared.model.encoding].static
        self.encode = FUSED_ENCODINGS[shared.model.encoding]
        self.loss = LOSSES[shared.training.loss]
        self.criterion = _criterion(shared.training.loss)

    @property
    def members(self) -> int:
        return len(self.cfgs)

    def predict(self, out: torch.Tensor) -> torch.Tensor:
        """Each member's predicted classes ``[K, B]`` from the network's output spikes or membrane
        ``[T, B, K*classes]``."""
        return self.loss.predict(_fold(out, self.members)).view(self.members, -1)

    def train_batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Train every member on its batch (:func:`~objectives.train_batch` for each at once, stepping after
        every window or once per batch as ``training.step_every`` says): images ``x`` ``[K, B, C, H, W]``,
        labels ``y`` ``[K, B]``. Returns each member's mean loss over the windows ``[K]``, its correct
        predictions ``[K]`` and its layers' spike rates ``[layers, K]``, as tensors (no device sync)."""
        inputs = self.encode(x, self.num_steps, self.generators)
        targets = y.flatten()
        state, losses, outs, rates = None, [], [], []
        self.optimizer.zero_grad()
        for start in range(0, self.num_steps, self.window):
            steps = min(self.window, self.num_steps - start)
            chunk = inputs if self.static else inputs[start : start + steps]
            out = self.model(chunk, steps, state, static=self.static)
            scored = out.spikes if self.loss.on == "spikes" else out.mem
            member_losses = self.criterion(_fold(scored, self.members), targets).view(self.members, -1).mean(1)
            # the sum: each member's weights get the gradient of its own loss
            member_losses.sum().backward()
            if self.per_window:
                self.optimizer.step()
                self.optimizer.zero_grad()
            state = detach_state(out.state)
            losses.append(member_losses.detach())
            outs.append(scored.detach())
            rates.append(torch.stack(out.rates) * steps)
        if not self.per_window:
            self.optimizer.step()
        correct = (self.predict(torch.cat(outs)) == y).sum(1)
        return torch.stack(losses).mean(0), correct, torch.stack(rates).sum(0) / self.num_steps

    def member_state_dict(self, slot: int) -> dict[str, torch.Tensor]:
        """The member's weights as its own :class:`ConvSNN`'s state dict (a copy)."""
        return self.model.member_state_dict(slot)

    def member_costs(self, slot: int, split: Split, weights: dict[str, torch.Tensor] | None = None) -> CostMetrics:
        """What the member's weights (or ``weights``, a state dict of its own network) cost on ``split``:
        :func:`~objectives.cost_metrics` of its own network holding them, as its lone run measures them."""
        lone = self.lone[slot]
        lone.load_state_dict(weights if weights is not None else self.member_state_dict(slot))
        return cost_metrics(lone, self.cfgs[slot], split)

    def stop(self, slot: int) -> None:
        """The member takes no more steps (it still runs until :meth:`keep` drops it)."""
        self.optimizer.stop(slot)

    def keep(self, slots: Sequence[int]) -> None:
        """Compaction: only the members at ``slots`` remain, in that order, each unchanged."""
        self.model.keep(slots)
        self.optimizer.keep(slots, self.model.parameters())
        self.cfgs = [self.cfgs[s] for s in slots]
        self.lone = [self.lone[s] for s in slots]
        self.generators = [self.generators[s] for s in slots]


# ----------------------------------------------------------------------------- training an array to the end


@dataclass
class _Member:
    """What :func:`train_array` keeps of one member, as :func:`~objectives.train` keeps it of its run."""

    cfg: TrialConfig
    on_epoch: Callable[[EpochMetrics], None] | None
    shuffle: torch.Generator
    history: list[EpochMetrics] = field(default_factory=list)
    best_val: float = -1.0
    best_epoch: int = 0
    best_weights: dict[str, torch.Tensor] | None = None
    best_rates: tuple[float, ...] = ()
    best_costs: CostMetrics | None = None


def train_array(
    cfgs: Sequence[TrialConfig],
    data: Data | None = None,
    on_epoch: Sequence[Callable[[EpochMetrics], None] | None] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    keep_weights: bool = False,
) -> list[TrainResult | Exception]:
    """Train ``cfgs`` (see :func:`check_array`) as one fused array, each member as
    :func:`~objectives.train` trains it alone; one entry per member, in order.

    ``on_epoch[k]`` is called after each of member k's epochs, as ``train``'s ``on_epoch``. If it
    raises an ``Exception`` (``optuna.TrialPruned``), member k leaves the array at this epoch
    boundary and its entry is that exception; a member whose training loss is not finite leaves
    with :class:`TrainingDiverged`; the others go on unchanged. Every other member's entry is the
    :class:`TrainResult` its lone run gives: early stopping after its own patience, test accuracy
    and costs of its best-validation weights, and (``keep_weights``) those weights as the state
    dict of its own :class:`ConvSNN`. ``on_batch(done, total)`` reports progress within an epoch.
    Anything else raised (``KeyboardInterrupt``) stops the whole array.
    """
    check_array(cfgs)
    shared = cfgs[0]
    device = resolve_device(shared.training.device)
    data = data if data is not None else load(shared.resolved().dataset, device)
    callbacks = list(on_epoch) if on_epoch is not None else [None] * len(cfgs)
    array = TrialArray(cfgs, data)
    members = [_Member(c, cb, torch.Generator().manual_seed(c.training.seed)) for c, cb in zip(cfgs, callbacks)]
    outcomes: list[TrainResult | Exception | None] = [None] * len(cfgs)
    slots = list(range(len(cfgs)))  # slots[s]: the index in ``cfgs`` of the array's member s
    n_train, batch_size = len(data.train), shared.training.batch_size
    n_batches = math.ceil(n_train / batch_size)
    started = time.perf_counter()
    epoch = 0
    while slots:
        epoch += 1
        epoch_start = time.perf_counter()
        orders = torch.stack([torch.randperm(n_train, generator=members[m].shuffle) for m in slots]).to(device)
        loss_sum = torch.zeros(len(slots), device=device)
        correct = torch.zeros(len(slots), device=device)
        rate_sum = torch.zeros((), device=device)
        for b in range(n_batches):
            idx = orders[:, b * batch_size : (b + 1) * batch_size]
            loss, right, rates = array.train_batch(data.train.x[idx], data.train.y[idx])
            loss_sum += loss * idx.shape[1]
            correct += right
            rate_sum = rate_sum + rates * idx.shape[1]
            if on_batch is not None:
                on_batch(b + 1, n_batches)
        train_seconds = time.perf_counter() - epoch_start
        # one device sync per epoch, as train() does
        train_losses = [v / n_train for v in loss_sum.tolist()]
        train_accs = [v / n_train for v in correct.tolist()]
        spike_rates = (rate_sum / n_train).T.tolist()
        finished, leaving = [], []
        for s, m in enumerate(slots):
            member = members[m]
            if not math.isfinite(train_losses[s]):
                outcomes[m] = TrainingDiverged(epoch, train_losses[s])
                leaving.append(s)
                continue
            # the validation pass counts what the weights cost too (a study may choose by it, never by the test set)
            val_costs = array.member_costs(s, data.val)
            metrics = EpochMetrics(
                epoch=epoch,
                train_loss=train_losses[s],
                train_acc=train_accs[s],
                val_acc=val_costs.accuracy,
                spike_rates=tuple(spike_rates[s]),
                seconds=time.perf_counter() - epoch_start,
                train_samples_per_s=n_train / train_seconds,
                val_costs=val_costs.to_dict(),
            )
            member.history.append(metrics)
            if metrics.val_acc > member.best_val:
                member.best_val, member.best_epoch, member.best_rates = metrics.val_acc, epoch, metrics.spike_rates
                member.best_weights, member.best_costs = array.member_state_dict(s), val_costs
            if member.on_epoch is not None:
                try:
                    member.on_epoch(metrics)
                except Exception as exc:  # noqa: BLE001 - this member's end (pruned, failed); the array goes on
                    outcomes[m] = exc
                    leaving.append(s)
                    continue
            t = member.cfg.training
            if epoch == t.epochs or epoch - member.best_epoch >= t.early_stopping_patience:
                outcomes[m] = _result(array, s, member, data, started, keep_weights)
                finished.append(s)
        gone = set(finished) | set(leaving)
        if gone:
            remaining = [s for s in range(len(slots)) if s not in gone]
            if remaining:
                array.keep(remaining)
            slots = [slots[s] for s in remaining]
    return outcomes  # type: ignore[return-value]


def _result(
    array: TrialArray, slot: int, member: _Member, data: Data, started: float, keep_weights: bool
) -> TrainResult:
    """A finished member's result: its best-validation weights tested (with their costs) in its own network."""
    weights = cast(dict[str, torch.Tensor], member.best_weights)  # the first epoch always sets them
    costs = array.member_costs(slot, data.test, weights)
    n_train = len(data.train)
    train_time = sum(n_train / m.train_samples_per_s for m in member.history)
    return TrainResult(
        val_acc=member.best_val,
        best_epoch=member.best_epoch,
        test_acc=costs.accuracy,
        epochs=len(member.history),
        seconds=time.perf_counter() - started,
        train_samples_per_s=n_train * len(member.history) / train_time,
        spike_rates=member.best_rates,
        n_params=array.n_params,
        history=member.history,
        stopped_early=len(member.history) < member.cfg.training.epochs,
        state_dict=weights if keep_weights else None,
        costs=costs,
        val_costs=cast(CostMetrics, member.best_costs),
    )
