"""What a trial stores, in one schema: :class:`TrialRecord`, :class:`EpochMetrics` and the study's own attributes.

Optuna keeps a trial's state, value, parameters and times. Everything else a trial of
this project records (its resolved run config, results, why it stopped, where its
weights are, which stage of a comparison it belongs to) is an Optuna user attribute.
The objective writes those through :meth:`TrialRecord.attrs` and
:meth:`TrialRecord.to_user_attrs`; the runner, ``best``, the dashboard note and the
reports read them through :meth:`TrialRecord.from_frozen_trial`. The attribute names
are the dataclass's field names: they are spelled nowhere else.

What is stored is made for reading in optuna-dashboard, which shows each attribute's value as stored (a
mapping as one JSON line, cut at 1,024 characters): measured floats are rounded where their last digits
are noise (:data:`ROUNDING`), ``spike_rates`` is kept as a mapping from layer name to rate, and ``config``
as one attribute per section (``config.dataset``, ``config.model``, ``config.training``), ``costs`` as its totals
with its per-layer lists (``costs.layers``) and accuracy at every step (``costs.accuracy_by_step``) beside them.
Reading takes both these and the forms studies written before kept (``spike_rates`` as a list, ``config`` and
``costs`` as one mapping each), and gives the same record.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._codec import Combination, parse_study_name
from ._config import SECTIONS

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

#: the study user attribute that keeps the study's config (the study config's ``to_dict()``)
STUDY_CONFIG_ATTR = "study_config"


def layer_names(n: int) -> list[str]:
    """Names of ``n`` spiking layers, as spike rates are reported: ``conv1`` ... ``conv{n-1}``, then ``output``."""
    return [f"conv{i + 1}" for i in range(n - 1)] + ["output"]


@dataclass(frozen=True)
class EpochMetrics:
    """What one epoch measured. ``spike_rates`` are the mean training spike rates per spiking layer;
    ``val_costs`` what the epoch's weights cost on the validation set (``objectives.CostMetrics.to_dict()``,
    whose ``accuracy`` is ``val_acc``)."""

    epoch: int
    train_loss: float
    train_acc: float
    val_acc: float
    spike_rates: tuple[float, ...]
    seconds: float
    train_samples_per_s: float
    val_costs: Mapping[str, Any] | None = None


#: measured floats as they are stored, field -> decimals kept (``None``: a whole number, as an ``int``): the digits
#: past these are timing noise. ``spike_rates`` keep :data:`SPIKE_RATE_DIGITS` significant digits (a mean firing
#: rate over the training epoch says nothing in its fifth digit). Accuracies are exact fractions and are never
#: rounded, nor are the cost metrics (``costs``): they are no measurement with noise but the same to the last digit
#: for the same weights and images (``snn-study train`` on a trial's config prints its recorded costs), and counts
ROUNDING: dict[str, int | None] = {"seconds": 2, "train_samples_per_s": None}
SPIKE_RATE_DIGITS = 4


def _rounded(value: Any, decimals: int | None) -> Any:
    """A finite float rounded to ``decimals`` (an ``int`` for ``None``); anything else as it is."""
    return round(value, decimals) if isinstance(value, float) and math.isfinite(value) else value


def _significant(value: Any, digits: int = SPIKE_RATE_DIGITS) -> Any:
    """A finite float to ``digits`` significant digits; anything else as it is."""
    return float(f"{value:.{digits}g}") if isinstance(value, float) and math.isfinite(value) else value


@dataclass(frozen=True)
class _Stored:
    """How a field is kept in user attributes: ``write(name, value)`` gives the attributes of a (plain) value,
    ``read(attrs, name)`` the value back from a trial's attributes (``None`` where it has none)."""

    write: Callable[[str, Any], dict[str, Any]]
    read: Callable[[Mapping[str, Any], str], Any]


def _read_as_is(attrs: Mapping[str, Any], name: str) -> Any:
    value = attrs.get(name)
    return tuple(value) if isinstance(value, list) else value


#: a field as one attribute of the same name, its value as it is
_AS_IS = _Stored(write=lambda name, value: {name: value}, read=_read_as_is)
#: a measured float, rounded (:data:`ROUNDING`)
_MEASURED = _Stored(write=lambda name, value: {name: _rounded(value, ROUNDING[name])}, read=_read_as_is)


def _write_rates(name: str, rates: list[Any]) -> dict[str, Any]:
    return {name: {layer: _significant(r) for layer, r in zip(layer_names(len(rates)), rates)}}


def _read_rates(attrs: Mapping[str, Any], name: str) -> tuple[Any, ...] | None:
    """The rates in layer order, from a mapping by layer name (or, written before, a list)."""
    value = attrs.get(name)
    if not isinstance(value, Mapping):
        return _read_as_is(attrs, name)
    names = layer_names(len(value))
    return tuple(value[n] for n in names) if set(names) == set(value) else tuple(value.values())


#: spike rates as ``{"conv1": 0.1234, ..., "output": 0.2}`` (4 significant digits), read back in layer order
_RATES = _Stored(write=_write_rates, read=_read_rates)


def _write_sections(name: str, config: Mapping[str, Any]) -> dict[str, Any]:
    if set(config) != set(SECTIONS):
        raise ValueError(f"{name} has sections {sorted(config)}; expected {', '.join(SECTIONS)}")
    return {f"{name}.{section}": config[section] for section in SECTIONS}


def _read_sections(attrs: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    """The run config from its sections' attributes, or (written before) its one attribute. A config whose
    sections are not all there yet (another process is writing them, one by one) reads as not set."""
    whole = attrs.get(name)
    if whole is not None:
        return whole
    parts = {section: attrs.get(f"{name}.{section}") for section in SECTIONS}
    return parts if all(isinstance(p, Mapping) for p in parts.values()) else None


#: a run config as one attribute per section (``config.dataset`` ...), which the dashboard shows one per line
_SECTIONS = _Stored(write=_write_sections, read=_read_sections)


#: the attributes ``costs`` is split into besides its own (the totals): the per-layer lists with the layer names,
#: and the accuracy at every time step; one attribute would pass the dashboard's 1,024 characters on MNIST
COSTS_LAYERS, COSTS_BY_STEP = "costs.layers", "costs.accuracy_by_step"


def _per_layer(key: str) -> bool:
    return key == "layers" or key.startswith("layer_")


def _write_costs(name: str, costs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: {k: v for k, v in costs.items() if not _per_layer(k) and k != "accuracy_by_step"},
        COSTS_LAYERS: {k: v for k, v in costs.items() if _per_layer(k)},
        COSTS_BY_STEP: costs.get("accuracy_by_step"),
    }


def _read_costs(attrs: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    """The cost metrics from their three attributes, or (written before) their one. Costs whose attributes are not
    all there yet (another process is writing them, one by one) read as not set."""
    totals = attrs.get(name)
    if not isinstance(totals, Mapping) or "layers" in totals:
        return totals
    layers = attrs.get(COSTS_LAYERS)
    if not isinstance(layers, Mapping) or COSTS_BY_STEP not in attrs:
        return None
    by_step = attrs[COSTS_BY_STEP]
    return {**totals, **layers, **({"accuracy_by_step": by_step} if by_step is not None else {})}


#: cost metrics as three attributes: ``costs`` (the totals), ``costs.layers`` and ``costs.accuracy_by_step``
_COSTS = _Stored(write=_write_costs, read=_read_costs)


def _attr(default: Any = None, stored: _Stored = _AS_IS) -> Any:
    """A field stored as Optuna user attributes: one of the same name, unless ``stored`` says otherwise."""
    return field(default=default, metadata={"user_attr": True, "stored": stored})


@dataclass(frozen=True)
class TrialRecord:
    """One trial as this project reads it: Optuna's fields and the project's user attributes.

    The fields up to ``intermediate_values`` are Optuna's own; every later field is a
    user attribute of the same name (``None`` or empty while the trial has not set it).
    """

    study: str
    number: int
    #: Optuna's state name: ``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING`` or ``WAITING``
    state: str
    #: the best validation accuracy of a complete trial: its objective value, the first of a study of several
    #: objectives (a study's first objective is always ``val_acc``)
    value: float | None = None
    #: every objective value of a complete trial, in the order of the study's objectives (``value`` first)
    values: tuple[float, ...] = ()
    #: Optuna parameters; a waiting trial's are the ones it was queued with
    params: Mapping[str, Any] = field(default_factory=dict)
    datetime_start: datetime | None = None
    datetime_complete: datetime | None = None
    #: validation accuracy reported per epoch (Optuna's intermediate values)
    intermediate_values: Mapping[int, float] = field(default_factory=dict)

    #: the resolved run config (``TrialConfig.to_dict()``), set when the trial starts (stored one attribute per
    #: section, ``config.model`` ...)
    config: Mapping[str, Any] | None = _attr(stored=_SECTIONS)
    #: the comparison stage the trial belongs to (``tune`` or ``replicate``), if any
    stage: str | None = _attr()
    #: free labels (e.g. how the trial was launched)
    tags: tuple[str, ...] = _attr(())
    #: the trial numbers trained together as one fused array (this one among them); empty when it trained alone
    array: tuple[int, ...] = _attr(())
    #: test accuracy of the best-validation weights
    test_acc: float | None = _attr()
    best_epoch: int | None = _attr()
    #: epochs trained
    epochs: int | None = _attr()
    seconds: float | None = _attr(stored=_MEASURED)
    train_samples_per_s: float | None = _attr(stored=_MEASURED)
    #: mean training spike rate per spiking layer at the best epoch (:func:`layer_names` order; stored by layer name)
    spike_rates: tuple[float, ...] = _attr((), stored=_RATES)
    n_params: int | None = _attr()
    stopped_early: bool | None = _attr()
    #: the epoch after which the pruner stopped the trial
    pruned_at: int | None = _attr()
    #: why the trial failed for good (a diverged loss): such a trial is done, not retried
    failure: str | None = _attr()
    #: the trial was stopped by Ctrl-C or a signal (it is re-queued when the study resumes)
    interrupted: bool | None = _attr()
    #: the Optuna artifact id of the best weights
    weights_artifact: str | None = _attr()
    #: why the best weights were not saved (the artifact folder failed); the trial's result stands
    weights_missing: str | None = _attr()
    #: what the best weights cost at inference on the test set (``objectives.CostMetrics.to_dict()``)
    costs: Mapping[str, Any] | None = _attr(stored=_COSTS)

    @classmethod
    def attr_names(cls) -> tuple[str, ...]:
        """The user attribute names this schema writes and reads."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("user_attr"))

    @classmethod
    def _stored(cls) -> dict[str, _Stored]:
        return {f.name: f.metadata["stored"] for f in dataclasses.fields(cls) if f.metadata.get("user_attr")}

    @classmethod
    def attrs(cls, **values: Any) -> dict[str, Any]:
        """User attributes from field values (``TrialRecord.attrs(pruned_at=3)``), names checked, values plain and
        in their stored form (see the module's docstring: ``config`` becomes one attribute per section)."""
        names = cls.attr_names()
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise TypeError(f"{unknown[0]!r} is not a TrialRecord user attribute; allowed: {', '.join(names)}")
        stored = cls._stored()
        out: dict[str, Any] = {}
        for name, value in values.items():
            out.update(stored[name].write(name, _plain(value)) if value is not None else {name: None})
        return out

    def to_user_attrs(self) -> dict[str, Any]:
        """The user attributes this record sets (fields still ``None`` or empty are left out)."""
        return self.attrs(**{name: getattr(self, name) for name in self.attr_names()
                             if getattr(self, name) not in (None, ())})

    @classmethod
    def from_frozen_trial(cls, study: str, trial: FrozenTrial) -> TrialRecord:
        """The record of an Optuna trial of study ``study``; attributes it does not have stay empty, whatever
        wrote it."""
        attrs = trial.user_attrs
        values: dict[str, Any] = {}
        for name, stored in cls._stored().items():
            value = stored.read(attrs, name)
            if value is not None:
                values[name] = value
        for name in ("config", "costs"):
            if not isinstance(values.get(name), Mapping):
                values.pop(name, None)
        params = {**trial.system_attrs.get("fixed_params", {}), **trial.params}
        # trial.value raises in a study of several objectives: values holds them all
        objective = tuple(trial.values or ()) if trial.state.name == "COMPLETE" else ()
        return cls(
            study=study,
            number=trial.number,
            state=trial.state.name,
            value=objective[0] if objective else None,
            values=objective,
            params=params,
            datetime_start=trial.datetime_start,
            datetime_complete=trial.datetime_complete,
            intermediate_values=dict(trial.intermediate_values),
            **values,
        )

    @property
    def combination(self) -> Combination:
        """The trial's neuron, surrogate and backprop: from its config (set when it starts), else its
        (queued) parameters, else its per-combination study's name."""
        combo = Combination.from_config(self.config).merged(Combination.from_params(self.params))
        cell = parse_study_name(self.study)
        return combo.merged(cell.combination) if cell is not None else combo

    @property
    def done(self) -> bool:
        """Complete, pruned, or failed for a reason that would repeat: a study counts it and moves on."""
        return self.state in ("COMPLETE", "PRUNED") or (self.state == "FAIL" and self.failure is not None)

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to completion (``None`` while it runs)."""
        if self.datetime_start is None or self.datetime_complete is None:
            return None
        return (self.datetime_complete - self.datetime_start).total_seconds()

    @property
    def epochs_run(self) -> int | None:
        """Epochs trained: the result's count, else the epochs it reported."""
        return self.epochs if self.epochs is not None else (len(self.intermediate_values) or None)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def foreign_study(directions: Sequence[str], study_attrs: Mapping[str, Any]) -> str | None:
    """Why a study (its Optuna directions by name, ``MAXIMIZE``..., and its user attributes) cannot be read as one
    snn-study ran, or ``None`` when it can: snn-study's studies maximize validation accuracy first, and keep their
    config (a study of several objectives only ever comes from a config that asked for them)."""
    ours = isinstance(study_attrs.get(STUDY_CONFIG_ATTR), Mapping)
    if list(directions[:1]) != ["MAXIMIZE"] or (len(directions) > 1 and not ours):
        what = ", ".join(d.lower() for d in directions)
        return f"another tool's study ({what}): snn-study's studies maximize val_acc first"
    return None


def saved_artifacts(study_attrs: Mapping[str, Any]) -> str | None:
    """The artifact folder a study's config named (``study.artifacts``), from the study's user attributes;
    ``None`` when it named none (the storage's default folder)."""
    config = study_attrs.get(STUDY_CONFIG_ATTR)
    section = config.get("study") if isinstance(config, Mapping) else None
    folder = section.get("artifacts") if isinstance(section, Mapping) else None
    return folder if isinstance(folder, str) else None
