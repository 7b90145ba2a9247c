"""The search space: the study config's ``search`` section, turned into Optuna suggestions.

Keys are run-config fields (``neuron``, ``lr``, ``model.beta``) or surrogate shape
parameters (``slope``, ``surrogate_args.alpha``). A list is a categorical choice,
``{low, high, log, step}`` a numeric range, a scalar a fixed value.

Parameters are sampled only where they apply, each under its own name: the
TBPTT window only for ``tbptt``; ``alpha`` only for the alpha and synaptic
neurons, and above ``beta`` for the alpha neuron; a surrogate's shape parameter
only for a surrogate that has it, named ``<surrogate>.<param>`` so that each
surrogate's slope is learned on its own. Where a neuron narrows a range (alpha
above beta, Lapicque's beta above 1/e) the parameter is named ``<neuron>.<field>``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import optuna

from objectives import (
    COMBINATION_PATHS,
    NEURON_SPECS,
    SECTIONS,
    SURROGATE_PARAMS,
    SURROGATE_SPECS,
    Combination,
    ConfigError,
    TrialConfig,
    coerce,
)

#: bare field name -> "section.field", for every run-config field (names are unique across sections)
FIELDS = {f.name: f"{section}.{f.name}" for section, kind in SECTIONS.items() for f in fields(kind)}
FIELDS["dataset"] = "dataset.name"
#: fields that are not searchable: where the data is and how the run is set up
FIXED_ONLY = {"dataset.root", "dataset.download", "training.device", "model.surrogate_args"}
SMALLEST_GAP = 1e-3


@dataclass(frozen=True)
class Categorical:
    key: str
    path: str
    choices: tuple


@dataclass(frozen=True)
class Range:
    key: str
    path: str
    low: float
    high: float
    log: bool = False
    step: float | None = None
    integer: bool = False
    #: a fixed surrogate parameter: set (not sampled) for every surrogate that has it
    fixed: bool = False


def _resolve(key: str) -> str:
    """``slope`` -> ``surrogate_args.slope``, ``lr`` -> ``training.lr``, ``model.beta`` stays."""
    if key.startswith("surrogate_args."):
        param = key.split(".", 1)[1]
        if param not in SURROGATE_PARAMS:
            allowed = ", ".join(SURROGATE_PARAMS)
            raise ConfigError(f"search.{key}", param, f"not a surrogate parameter; allowed: {allowed}")
        return key
    if "." in key and key.split(".", 1)[0] in SECTIONS:
        if key.split(".", 1)[1] not in {f.name for f in fields(SECTIONS[key.split(".", 1)[0]])}:
            raise ConfigError(f"search.{key}", key, "unknown field")
        return key
    if key in FIELDS:
        return FIELDS[key]
    if key in SURROGATE_PARAMS:
        return f"surrogate_args.{key}"
    allowed = ", ".join(sorted(set(FIELDS) | set(SURROGATE_PARAMS)))
    raise ConfigError(f"search.{key}", key, f"unknown search key; allowed: {allowed}")


class SearchSpace:
    """The parsed ``search`` section over a base run config."""

    def __init__(self, base: TrialConfig, search: Mapping[str, Any] | None):
        #: the ``search`` section as given
        self.search: dict[str, Any] = dict(search or {})
        self.categorical: list[Categorical] = []
        self.ranges: list[Range] = []
        fixed: dict[str, Any] = {}
        for key, value in self.search.items():
            path = _resolve(str(key))
            if path in FIXED_ONLY:
                raise ConfigError(f"search.{key}", value, "not searchable; set it in its own section")
            if isinstance(value, list):
                if not value:
                    raise ConfigError(f"search.{key}", value, "a categorical choice needs at least one value")
                if len(set(map(repr, value))) != len(value):
                    raise ConfigError(f"search.{key}", value, "a categorical choice lists each value once")
                self.categorical.append(Categorical(key, path, tuple(value)))
            elif isinstance(value, Mapping):
                self.ranges.append(_range(key, path, value))
            elif path.startswith("surrogate_args."):
                value = coerce(f"search.{key}", value, float)
                self.ranges.append(Range(key, path, value, value, fixed=True))
            else:
                fixed[path] = value
        self.base = _override(base, fixed, "search")
        self._check()

    # ---- validation: every value the sampler can produce must make a valid run config ----

    @property
    def _probe(self) -> dict[str, Any]:
        """Where the TBPTT window is searched, a window a trial can hold (its lowest): choices are checked, and a
        trial's choices first applied, with it rather than with the base's window, which no trial uses (its
        highest is checked against the time steps in :meth:`_check`)."""
        searched = self._range("training.tbptt_window")
        return {searched.path: int(searched.low)} if searched else {}

    def _check(self) -> None:
        for cat in self.categorical:
            for choice in cat.choices:
                _override(self.base, {**self._probe, cat.path: choice}, f"search.{cat.key}")
        for r in self.ranges:
            for value in (r.low, r.high):
                if r.path.startswith("surrogate_args."):
                    continue  # checked per surrogate when sampled; any positive number is a shape
                if r.path == "model.alpha" or (r.path == "model.beta" and self.choices("model.neuron") != ["leaky"]):
                    continue  # neuron-specific bounds are narrowed when sampling
                if r.path == "training.tbptt_window" and "tbptt" not in self.choices("training.backprop"):
                    continue
                _override(self.base, {r.path: int(value) if r.integer else value}, f"search.{r.key}")
        backprops = self.choices("training.backprop")
        if "tbptt" in backprops:
            window = self._high("training.tbptt_window")
            steps = self._low("model.num_steps")
            if window > steps:
                raise ConfigError("search.tbptt_window", window, f"must be <= the fewest time steps searched ({steps})")
        if "alpha" in self.choices("model.neuron") and self._high("model.alpha") <= self._low("model.beta"):
            raise ConfigError(
                "search.alpha",
                self._high("model.alpha"),
                f"the alpha neuron needs alpha > beta (beta from {self._low('model.beta')})",
            )
        if "lapicque" in self.choices("model.neuron") and self._high("model.beta") <= 1 / math.e:
            why = "the lapicque neuron needs beta > 1/e somewhere in the range"
            raise ConfigError("search.beta", self._high("model.beta"), why)
        for r in self.ranges:
            if r.path.startswith("surrogate_args."):
                param = r.path.split(".", 1)[1]
                if not any(param in SURROGATE_SPECS[s].params for s in self.choices("model.surrogate")):
                    raise ConfigError(
                        f"search.{r.key}",
                        param,
                        f"no searched surrogate has this parameter ({', '.join(self.choices('model.surrogate'))})",
                    )

    def choices(self, path: str) -> list:
        """The values field ``path`` (``model.neuron``) takes: its categorical choices, else its one fixed value."""
        for cat in self.categorical:
            if cat.path == path:
                return list(cat.choices)
        return [_get(self.base, path)]

    def _range(self, path: str) -> Range | None:
        return next((r for r in self.ranges if r.path == path), None)

    def _low(self, path: str) -> float:
        r = self._range(path)
        return r.low if r else min(self.choices(path))

    def _high(self, path: str) -> float:
        r = self._range(path)
        return r.high if r else max(self.choices(path))

    # ---- grid and combinations ----

    def grid_size(self) -> int:
        """How many combinations :meth:`grid` lists, counted without listing them."""
        return math.prod(len(c.choices) for c in self.categorical)

    def grid(self) -> list[dict[str, Any]]:
        """Every combination of the categorical choices, as Optuna params (``{key: value}``)."""
        keys = [c.key for c in self.categorical]
        return [dict(zip(keys, combo)) for combo in itertools.product(*(c.choices for c in self.categorical))]

    def combinations(self) -> list[Combination]:
        """Every neuron x surrogate x backprop combination searched."""
        product = itertools.product(*(self.choices(p) for p in COMBINATION_PATHS))
        return [Combination(*(str(v) for v in combo)) for combo in product]

    def restricted(self, combination: Combination) -> SearchSpace:
        """The same space with ``combination``'s fields fixed (the space of one per-combination study)."""
        fixed = combination.as_paths()
        search = {k: v for k, v in self.search.items() if _resolve(str(k)) not in fixed}
        return SearchSpace(_override(self.base, fixed, "search"), search)

    # ---- sampling ----

    def suggest(self, trial: optuna.trial.BaseTrial) -> TrialConfig:
        """The run config for ``trial``: categorical choices first, then the ranges that apply."""
        values: dict[str, Any] = {}
        for cat in self.categorical:
            values[cat.path] = trial.suggest_categorical(cat.key, list(cat.choices))
        current = _override(self.base, {**self._probe, **values}, "search")
        neuron, surrogate = current.model.neuron, current.model.surrogate
        # beta before alpha: the alpha neuron's alpha range starts above the sampled beta
        for r in sorted(self.ranges, key=lambda r: r.path != "model.beta"):
            name, low, high = r.key, r.low, r.high
            if r.path == "training.tbptt_window" and current.training.backprop != "tbptt":
                continue
            if r.path == "model.alpha":
                if "alpha" not in NEURON_SPECS[neuron].params:
                    continue
                if neuron == "alpha":
                    beta = values.get("model.beta", current.model.beta)
                    low = max(low, beta + SMALLEST_GAP)
            if r.path == "model.beta" and neuron == "lapicque":
                low = max(low, 1 / math.e + SMALLEST_GAP)
            if r.path == "model.beta" and neuron == "alpha":
                high = min(high, 1 - SMALLEST_GAP)
            if r.path.startswith("surrogate_args."):
                param = r.path.split(".", 1)[1]
                if param not in SURROGATE_SPECS[surrogate].params:
                    continue
                name = f"{surrogate}.{param}"
            elif (low, high) != (r.low, r.high):
                name = f"{neuron}.{r.key}"
            low = min(low, high)
            if r.fixed:
                value = r.low
            elif r.integer:
                value = trial.suggest_int(name, int(math.ceil(low)), int(high), step=int(r.step or 1), log=r.log)
            else:
                value = trial.suggest_float(name, low, high, log=r.log, step=r.step)
            values[r.path] = value
        surrogate_args = {p.split(".", 1)[1]: v for p, v in values.items() if p.startswith("surrogate_args.")}
        plain = {p: v for p, v in values.items() if not p.startswith("surrogate_args.")}
        if surrogate_args:
            plain["model.surrogate_args"] = surrogate_args
        return _override(self.base, plain, "search")


def _range(key: str, path: str, spec: Mapping[str, Any]) -> Range:
    allowed = {"low", "high", "log", "step"}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ConfigError(f"search.{key}.{unknown[0]}", spec[unknown[0]], "allowed: low, high, log, step")
    for bound in ("low", "high"):
        if bound not in spec:
            raise ConfigError(f"search.{key}", dict(spec), f"a range needs {bound}")
    # finite numbers only: Optuna's distributions and every field below take no NaN or infinity
    low, high = (coerce(f"search.{key}.{bound}", spec[bound], float) for bound in ("low", "high"))
    if low > high:
        raise ConfigError(f"search.{key}", dict(spec), f"low ({spec['low']}) must be <= high ({spec['high']})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"search.{key}.log", log, "expected true or false")
    if log and low <= 0:
        raise ConfigError(f"search.{key}.low", spec["low"], "a log range needs low > 0")
    step = spec.get("step")
    if step is not None:
        step = coerce(f"search.{key}.step", step, float)
        if step <= 0:
            raise ConfigError(f"search.{key}.step", spec["step"], "expected a positive number")
    if log and step is not None:
        raise ConfigError(f"search.{key}.step", spec["step"], "a log range cannot have a step")
    integer = _is_integer_field(path)
    if integer:
        for option in ("low", "high", "step"):
            if spec.get(option) is not None and not float(spec[option]).is_integer():
                raise ConfigError(f"search.{key}.{option}", spec[option], f"{path} is a whole number: expected one")
    return Range(key, path, low, high, log, step, integer)


def _is_integer_field(path: str) -> bool:
    if path.startswith("surrogate_args."):
        return False
    section, name = path.split(".", 1)
    kind = SECTIONS[section]
    return next(f for f in fields(kind) if f.name == name).type in ("int", "int | None")


def _get(cfg: TrialConfig, path: str) -> Any:
    section, name = path.split(".", 1)
    if section == "surrogate_args":
        return cfg.model.resolved_surrogate_args.get(name)
    return getattr(getattr(cfg, section), name)


def _override(base: TrialConfig, values: Mapping[str, Any], where: str) -> TrialConfig:
    """``base`` with ``values`` set; a ConfigError names the search key that caused it.

    A new surrogate keeps only those of the base's shape parameters it has.
    """
    values = dict(values)
    if "model.surrogate" in values and "model.surrogate_args" not in values:
        surrogate = values["model.surrogate"]
        own = SURROGATE_SPECS[surrogate].params if surrogate in SURROGATE_SPECS else {}
        values["model.surrogate_args"] = {k: v for k, v in base.model.surrogate_args.items() if k in own}
    try:
        return base.replace(**values)
    except ConfigError as exc:
        raise ConfigError(f"{where} -> {exc.field}", exc.value, exc.allowed) from None
