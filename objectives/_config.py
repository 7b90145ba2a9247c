"""`TrialConfig`: the one frozen object that describes one training run.

A YAML file, a study's sampled parameters and ``snn-study best`` all end here:
``TrialConfig.from_dict`` checks every field once (unknown names, types, registry
keys, ranges, cross-field rules) and raises :class:`ConfigError` with one line
that names the field, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import abc
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, get_args, get_origin, get_type_hints

from ._errors import ConfigError
from ._specs import (
    BACKPROP_WINDOW_FIELD,
    BACKPROPS,
    DATASET_NAMES,
    ENCODING_SPECS,
    ENGINES,
    GAINS,
    IMAGE_SIZES,
    LOSS_SPECS,
    NEURON_SPECS,
    OPTIMIZER_NAMES,
    RESET_MECHANISMS,
    STEP_EVERY,
    SURROGATE_SCALES,
    SURROGATE_SPECS,
)

DATA_ENV = "SNN_STUDY_DATA"
#: the largest training seed torch takes (``torch.manual_seed``: an unsigned 64-bit integer)
MAX_SEED = 2**64 - 1
#: sizes past which a config asks for memory no machine has (torch fails allocating, after a study is written):
#: channels of one conv block, and time steps (every step's activations are kept for the backward pass)
MAX_CHANNELS = 65_536
MAX_STEPS = 100_000


@dataclass(frozen=True)
class DatasetConfig:
    """Which images, where they live and how the training set is split."""

    name: str = "mnist"
    #: folder holding ``MNIST/raw`` etc.; ``None`` means ``$SNN_STUDY_DATA`` or ``data/``
    root: str | None = None
    #: images carved from the training set (seeded) for validation: selection and pruning use these
    val_size: int = 5000
    #: cap on training images (after the validation split), for quick runs
    train_subset: int | None = None
    #: cap on test images (the test set only reports, it never selects)
    test_subset: int | None = None
    download: bool = True
    #: standardize pixels to zero mean and unit variance (over the training split) instead of [0, 1];
    #: for direct encoding only: rate encoding needs [0, 1] as spike probabilities. ``None``: standardized
    #: under an encoding that feeds the image itself (direct), [0, 1] under one that draws from it (rate)
    normalize: bool | None = None

    @property
    def resolved_root(self) -> str:
        """The data folder actually used."""
        return self.root or os.environ.get(DATA_ENV) or "data/"


@dataclass(frozen=True)
class ModelConfig:
    """The conv-SNN: neuron model, surrogate gradient, encoding and shape."""

    neuron: str = "leaky"
    surrogate: str = "fast_sigmoid"
    #: surrogate shape parameters over the registry defaults, e.g. ``{slope: 25}``
    surrogate_args: Mapping[str, float] = field(default_factory=dict)
    beta: float = 0.5
    #: synaptic decay, used by the alpha and synaptic neurons. 0.7 rather than the original code's 0.9, chosen on
    #: MNIST validation (one epoch, 10,000 images, 3 seeds; benchmarks/README.md, "How the defaults were chosen")
    alpha: float = 0.7
    #: the membrane at which a neuron spikes. Under the matched gain a constant input I settles every membrane
    #: at I: 0.5 puts the leaky neuron at beta 0.5 where the original code's raw gain (2) and threshold 1 put it
    #: (the same spikes, the membrane halved). At threshold 1 a fresh network starts nearly silent: MNIST
    #: validation after one epoch on 10,000 images, seed 0, leaky and fast sigmoid, 91.26 % (half-width at half
    #: maximum 0.5) against 93.58 % at 0.5 (half-width 0.25); benchmarks/README.md
    threshold: float = 0.5
    #: ``matched``: the input current is divided by the neuron's DC gain, so a constant input ``I`` settles
    #: every neuron's membrane at ``I`` whatever its alpha and beta; ``raw``: snntorch's arithmetic
    gain: str = "matched"
    #: ``normalized``: every surrogate with a width has derivative 1 at the threshold and area
    #: ``2 surrogate_width`` under it; ``raw``: its shape parameters as given (``surrogate_args``, snntorch's scales)
    surrogate_scale: str = "normalized"
    #: the normalized surrogate's width, in units of the membrane (``normalized`` only): half its area, the
    #: half-width of a box of height 1 with the same area. Chosen on MNIST validation (one epoch, 10,000 images,
    #: threshold 0.5, 3 seeds; benchmarks/README.md): a surrogate with compact support needs the resting membrane
    #: (0) within reach, the fast sigmoid does better narrower; at widths 0.5 / 0.75 / 1 the clipped
    #: straight-through estimator reached 70.21 / 95.02 / 94.71 %, the fast sigmoid 93.18 / 92.26 / 90.87 %
    surrogate_width: float = 0.75
    #: ``subtract``, ``zero`` or ``none``; ``None`` means the neuron's own default (snntorch's: zero for alpha,
    #: subtract for the others). One reset for every neuron: the alpha neuron's zero reset empties its slow
    #: traces at every spike (validation 87.25 % against 93.60 % under the subtractive reset, 3 seeds;
    #: benchmarks/README.md)
    reset_mechanism: str | None = "subtract"
    num_steps: int = 25
    encoding: str = "direct"
    channels: tuple[int, ...] = (12, 64)
    kernel_size: int = 5

    @property
    def resolved_surrogate_args(self) -> dict[str, float]:
        """The surrogate's shape parameters with registry defaults filled in (under the normalized scale,
        those the width does not set)."""
        return {**SURROGATE_SPECS[self.surrogate].free(self.surrogate_scale), **self.surrogate_args}

    @property
    def spiking_layers(self) -> int:
        """Layers of neurons: one per conv block and the output layer."""
        return len(self.channels) + 1


@dataclass(frozen=True)
class TrainingConfig:
    """How the network is trained: backprop method, optimizer, loss, stopping, device."""

    backprop: str = "bptt"
    #: time steps per truncated window (``tbptt`` only)
    tbptt_window: int = 5
    #: ``batch``: the gradients of a batch's windows are summed into one optimizer step (one update per batch
    #: for every backprop method); ``window``: a step after every window (snntorch's TBPTT and RTRL)
    step_every: str = "batch"
    epochs: int = 30
    batch_size: int = 128
    optimizer: str = "adamax"
    lr: float = 0.01
    loss: str = "ce_rate"
    #: stop after this many epochs without a better validation accuracy
    early_stopping_patience: int = 10
    #: ``auto`` (CUDA when there is one), ``cpu``, ``cuda``, ``cuda:N``
    device: str = "auto"
    seed: int = 0
    #: ``fast`` (layer by layer over time) or ``snntorch`` (snntorch's classes, step by step)
    engine: str = "fast"
    #: on a GPU, record one training batch as a CUDA graph and replay it (the same kernels,
    #: launched once per batch instead of one by one); no effect on a CPU
    cuda_graph: bool = True


#: the run config's sections: name -> dataclass
SECTIONS: dict[str, type] = {"dataset": DatasetConfig, "model": ModelConfig, "training": TrainingConfig}


@dataclass(frozen=True)
class TrialConfig:
    """Everything one training run needs. Build it with :meth:`from_dict` (validated)."""

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> TrialConfig:
        """Build and validate a config from nested dicts (a parsed YAML file); missing fields take defaults."""
        data = {} if data is None else data
        if not isinstance(data, Mapping):
            raise ConfigError("config", data, "expected a mapping with sections dataset, model, training")
        unknown = sorted(set(data) - set(SECTIONS))
        if unknown:
            raise ConfigError(unknown[0], data[unknown[0]], f"unknown section; allowed: {', '.join(SECTIONS)}")
        sections = {name: build_section(name, kind, data.get(name)) for name, kind in SECTIONS.items()}
        config = cls(**sections)
        _check(config)
        return config

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain nested dicts (lists, not tuples), ready for YAML or JSON."""
        return {name: plain(dataclasses.asdict(getattr(self, name))) for name in SECTIONS}

    def resolved(self) -> TrialConfig:
        """The same run with every default spelled out: data folder, pixel scaling, surrogate parameters,
        reset mechanism."""
        m, d = self.model, self.dataset
        normalize = ENCODING_SPECS[m.encoding].static if d.normalize is None else d.normalize
        return dataclasses.replace(
            self,
            dataset=dataclasses.replace(d, root=d.resolved_root, normalize=normalize),
            model=dataclasses.replace(
                m,
                surrogate_args=m.resolved_surrogate_args,
                reset_mechanism=m.reset_mechanism or NEURON_SPECS[m.neuron].default_reset,
            ),
        )

    def replace(self, **overrides: Any) -> TrialConfig:
        """A validated copy with ``{"section.field": value}`` overrides."""
        return self.from_dict(apply_overrides(self.to_dict(), overrides))


def apply_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Nested-dict copy of ``data`` with dotted-path ``overrides`` set
    (``model.neuron`` -> ``data["model"]["neuron"]``)."""
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in data.items()}
    for path, value in overrides.items():
        parts = path.split(".")
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(path, value, f"{part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def plain(value: Any) -> Any:
    """``value`` as plain YAML/JSON data: mappings as dicts, tuples as lists, all the way down."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def build_section(name: str, kind: type, data: Any) -> Any:
    """The dataclass ``kind`` from the mapping ``data`` of section ``name``, each field checked by :func:`coerce`."""
    if data is None:
        return kind()
    if not isinstance(data, Mapping):
        raise ConfigError(name, data, "expected a mapping of fields")
    hints = get_type_hints(kind)
    names = [f.name for f in fields(kind)]
    values = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"{name}.{key}", value, f"unknown field; allowed: {', '.join(names)}")
        values[key] = coerce(f"{name}.{key}", value, hints[key])
    return kind(**values)


def coerce(path: str, value: Any, hint: Any) -> Any:
    """``value`` checked against the type annotation ``hint`` (ConfigError on ``path`` when it does not fit);
    ints are accepted where floats are expected."""
    args = get_args(hint)
    if type(None) in args:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
    origin = get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(path, value, "expected true or false")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(path, value, "expected an integer")
    if hint is float:
        if _finite(value):
            return float(value)
        raise ConfigError(path, value, "expected a finite number" if _number(value) else "expected a number")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(path, value, "expected a string")
    if origin is tuple:
        if isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return tuple(value)
        raise ConfigError(path, value, "expected a list of integers")
    if origin in (abc.Mapping, dict):
        if isinstance(value, Mapping) and all(_finite(v) for v in value.values()):
            return {str(k): float(v) for k, v in value.items()}
        raise ConfigError(path, value, "expected a mapping of names to numbers, each finite")
    raise TypeError(f"no coercion for {hint!r}")  # a bug in this module, not in the user's config


def shrinks_to_something(size: tuple[int, int], kernel_size: int, blocks: int) -> bool:
    """Whether ``blocks`` conv blocks (a ``kernel_size`` convolution, then 2x2 pooling) leave an image of ``size``
    at least one pixel high and wide."""
    height, width = size
    for _ in range(blocks):
        height, width = (height - kernel_size + 1) // 2, (width - kernel_size + 1) // 2
        if height < 1 or width < 1:
            return False
    return True


def device_problem(name: str) -> str | None:
    """Why ``name`` cannot name a device (``None`` when it can): ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    Whether that device is on this machine is asked of torch (``objectives.missing_device``)."""
    kind, colon, index = name.partition(":")
    if name in ("auto", "cpu", "cuda") or (kind == "cuda" and colon and index.isdigit() and index.isascii()):
        return None
    return "allowed: auto, cpu, cuda, cuda:N"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    """A number that every library takes: not NaN, not infinite, and an int that fits a float."""
    try:
        return _number(value) and math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _choices(path: str, value: str, registry: Iterable[str]) -> None:
    if value not in registry:
        raise ConfigError(path, value, f"allowed: {', '.join(registry)}")


def _at_least(path: str, value: float | None, low: float) -> None:
    if value is not None and value < low:
        raise ConfigError(path, value, f"must be >= {low}")


def _at_most(path: str, value: int, high: int) -> None:
    if value > high:
        raise ConfigError(path, value, f"must be <= {high}")


def _check(cfg: TrialConfig) -> None:
    d, m, t = cfg.dataset, cfg.model, cfg.training
    _choices("dataset.name", d.name, DATASET_NAMES)
    _at_least("dataset.val_size", d.val_size, 1)
    _at_least("dataset.train_subset", d.train_subset, 1)
    _at_least("dataset.test_subset", d.test_subset, 1)

    _choices("model.neuron", m.neuron, NEURON_SPECS)
    _choices("model.surrogate", m.surrogate, SURROGATE_SPECS)
    _choices("model.surrogate_scale", m.surrogate_scale, SURROGATE_SCALES)
    if not m.surrogate_width > 0:
        raise ConfigError("model.surrogate_width", m.surrogate_width, "must be > 0")
    spec = SURROGATE_SPECS[m.surrogate]
    allowed_args = spec.free(m.surrogate_scale)
    for key, value in m.surrogate_args.items():
        if key in spec.width_params and key not in allowed_args:
            raise ConfigError(
                f"model.surrogate_args.{key}", value,
                f"set by model.surrogate_width under model.surrogate_scale normalized; allowed: "
                f"{', '.join(allowed_args) or 'none'} (or model.surrogate_scale raw)",
            )
        if key not in allowed_args:
            raise ConfigError(
                f"model.surrogate_args.{key}",
                value,
                f"not a parameter of surrogate {m.surrogate!r}; allowed: {', '.join(allowed_args) or 'none'}",
            )
    args = m.resolved_surrogate_args
    why = spec.rule(args, m.surrogate_width if m.surrogate_scale == "normalized" else None)
    if why:
        bad = next(k for k in args if k not in spec.width_params)
        raise ConfigError(f"model.surrogate_args.{bad}", args[bad], why)
    if not 0 <= m.beta <= 1:
        raise ConfigError("model.beta", m.beta, "must be within [0, 1]")
    if not 0 <= m.alpha <= 1:
        raise ConfigError("model.alpha", m.alpha, "must be within [0, 1]")
    if m.threshold <= 0:
        raise ConfigError("model.threshold", m.threshold, "must be > 0")
    _choices("model.gain", m.gain, GAINS)
    problem = NEURON_SPECS[m.neuron].check(alpha=m.alpha, beta=m.beta, gain=m.gain)
    if problem:
        name, why = problem
        raise ConfigError(f"model.{name}", getattr(m, name), why)
    if m.reset_mechanism is not None and m.reset_mechanism not in RESET_MECHANISMS:
        raise ConfigError("model.reset_mechanism", m.reset_mechanism, f"allowed: {', '.join(RESET_MECHANISMS)} or null")
    _at_least("model.num_steps", m.num_steps, 1)
    _at_most("model.num_steps", m.num_steps, MAX_STEPS)
    _choices("model.encoding", m.encoding, ENCODING_SPECS)
    if d.normalize and not ENCODING_SPECS[m.encoding].static:
        raise ConfigError(
            "dataset.normalize", True, f"only with a direct encoding: {m.encoding!r} needs pixels in [0, 1]"
        )
    if not m.channels:
        raise ConfigError("model.channels", list(m.channels), "expected at least one conv block")
    for c in m.channels:
        _at_least("model.channels", c, 1)
        _at_most("model.channels", c, MAX_CHANNELS)
    _at_least("model.kernel_size", m.kernel_size, 1)
    height, width = IMAGE_SIZES[d.name]
    if not shrinks_to_something((height, width), m.kernel_size, len(m.channels)):
        raise ConfigError(
            "model.channels", list(m.channels), f"{len(m.channels)} conv blocks of kernel {m.kernel_size} shrink a "
            f"{height}x{width} image to nothing; use fewer blocks or a smaller kernel")

    _choices("training.backprop", t.backprop, BACKPROPS)
    _at_least("training.tbptt_window", t.tbptt_window, 1)
    if t.backprop == "tbptt" and t.tbptt_window > m.num_steps:
        raise ConfigError(
            "training.tbptt_window", t.tbptt_window, f"must be <= model.num_steps ({m.num_steps})"
        )
    _at_least("training.epochs", t.epochs, 1)
    _at_least("training.batch_size", t.batch_size, 1)
    _choices("training.optimizer", t.optimizer, OPTIMIZER_NAMES)
    if not t.lr > 0:
        raise ConfigError("training.lr", t.lr, "must be > 0")
    _choices("training.step_every", t.step_every, STEP_EVERY)
    window = BACKPROPS[t.backprop](cfg)
    neuron, layers = NEURON_SPECS[m.neuron], m.spiking_layers
    needed = neuron.min_window(layers)
    if window < needed:
        where = BACKPROP_WINDOW_FIELD[t.backprop]
        raise ConfigError(
            where, t.backprop if where == "training.backprop" else window,
            f"the {m.neuron} neuron answers an input {neuron.delay} step later, so the output answers the image "
            f"{needed - 1} steps later through {layers} spiking layers: a truncation window of {window} step(s) gives "
            f"the first convolution no gradient; use windows of >= {needed} steps (bptt with model.num_steps >= "
            f"{needed}, or tbptt with training.tbptt_window >= {needed})",
        )
    _choices("training.loss", t.loss, LOSS_SPECS)
    needed = LOSS_SPECS[t.loss].min_window
    if window < needed:
        raise ConfigError(
            "training.loss", t.loss, f"needs windows of >= {needed} time steps, and training.backprop {t.backprop} "
            f"gives {window}; use bptt, tbptt with tbptt_window >= {needed}, or another loss"
        )
    _at_least("training.early_stopping_patience", t.early_stopping_patience, 1)
    if not 0 <= t.seed <= MAX_SEED:
        raise ConfigError("training.seed", t.seed, f"must be within [0, {MAX_SEED}] (torch's seeds)")
    device = device_problem(t.device)
    if device:
        raise ConfigError("training.device", t.device, device)
    _choices("training.engine", t.engine, ENGINES)
