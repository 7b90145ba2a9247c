"""The search space: the study config's ``search`` section, turned into Optuna suggestions.

Keys are run-config fields (``neuron``, ``lr``, ``model.beta``) or surrogate shape
parameters (``slope``, ``surrogate_args.alpha``). A list is a categorical choice,
``{low, high, log, step}`` a numeric range, a scalar a fixed value.

Parameters are sampled only where they apply, each under its own name: the
TBPTT window only for ``tbptt``; ``alpha`` only for the alpha and synaptic
neurons, and above ``beta`` for the alpha neuron; a surrogate's shape parameter
only for a surrogate that has it (under the normalized scale, only those the width
does not set), named ``<surrogate>.<param>`` so that each surrogate's slope is
learned on its own; ``surrogate_width`` (one name: it means the same for every
surrogate) only under the normalized scale and for a surrogate with a width. Where
a neuron narrows a range (alpha above beta, Lapicque's beta above 1/e, a decay below
1 under the matched gain, the alpha neuron's truncation window at least its delay
through the network) the parameter is named ``<neuron>.<field>``.

A combination of categorical choices the run config refuses (the alpha neuron with
``rtrl``: no gradient reaches its first layer) is never drawn: each categorical is
drawn among the choices that still lead to a possible combination, and where that
narrows it, under a name that says by what (``alpha.backprop``). A grid leaves such
combinations out (:meth:`SearchSpace.excluded` says which and why); a search where
every combination is impossible is refused.
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
    ModelConfig,
    TrialConfig,
    coerce,
)

#: bare field name -> "section.field", for every run-config field (names are unique across sections)
FIELDS = {f.name: f"{section}.{f.name}" for section, kind in SECTIONS.items() for f in fields(kind)}
FIELDS["dataset"] = "dataset.name"
#: fields that are not searchable: where the data is and how the run is set up
FIXED_ONLY = {"dataset.root", "dataset.download", "training.device", "model.surrogate_args"}
SMALLEST_GAP = 1e-3
#: fields whose value is a truncation window (``BACKPROPS``): a combination is possible when their
#: largest value makes it so, and the alpha neuron's range starts at its delay through the network
WINDOW_PATHS = {"bptt": "model.num_steps", "tbptt": "training.tbptt_window"}
#: decays that make a neuron a leak-free integrator at 1, whose gain no finite factor matches
DECAY_PATHS = ("model.alpha", "model.beta")


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
        self._problems: dict[tuple, ConfigError | None] = {}
        self._exists_memo: dict[tuple, bool] = {}
        if not self._exists({}):
            first = tuple(c.choices[0] for c in self.categorical)
            problem = self._problem(first)
            why = f"{problem.field}: {problem.allowed}" if problem else "no combination is possible"
            raise ConfigError("search", self._describe(first),
                              f"every combination of the search is impossible, e.g. this one: {why}")

    # ---- validation: every value the sampler can produce must make a valid run config ----

    @property
    def _probe(self) -> dict[str, Any]:
        """Where the TBPTT window is searched, a window a trial can hold (its longest draw, which
        :meth:`_check` holds to the time steps): choices are checked, and a trial's choices first applied,
        with it rather than with the base's window, which no trial uses."""
        searched = self._range("training.tbptt_window")
        return {searched.path: int(searched.high)} if searched else {}

    def _check(self) -> None:
        # before the choices, which are checked with the longest window (_probe): one the time steps cannot hold
        if "tbptt" in self.choices("training.backprop"):
            window = self._high("training.tbptt_window")
            steps = self._low("model.num_steps")
            if window > steps:
                raise ConfigError("search.tbptt_window", window, f"must be <= the fewest time steps searched ({steps})")
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
                values: dict[str, Any] = {r.path: int(value) if r.integer else value}
                if r.path in DECAY_PATHS:
                    values[r.path] = min(value, 1 - SMALLEST_GAP)  # narrowed when sampling under the matched gain
                if r.path == "training.tbptt_window":
                    values["training.backprop"] = "tbptt"  # the window the loss and neurons need is its own
                if r.path in WINDOW_PATHS.values():
                    # a neuron's delay raises a window range's floor when sampling (the alpha neuron's);
                    # a combination its ceiling cannot reach is left out
                    values["model.neuron"] = next(n for n, spec in NEURON_SPECS.items() if spec.delay == 0)
                _override(self.base, values, f"search.{r.key}")
        if "alpha" in self.choices("model.neuron") and self._high("model.alpha") <= self._low("model.beta"):
            raise ConfigError(
                "search.alpha",
                self._high("model.alpha"),
                f"the alpha neuron needs alpha > beta (beta from {self._low('model.beta')})",
            )
        if "lapicque" in self.choices("model.neuron") and self._high("model.beta") <= 1 / math.e:
            why = "the lapicque neuron needs beta > 1/e somewhere in the range"
            raise ConfigError("search.beta", self._high("model.beta"), why)
        scales = self.choices("model.surrogate_scale")
        surrogates = self.choices("model.surrogate")
        for r in self.ranges:
            if r.path.startswith("surrogate_args."):
                param = r.path.split(".", 1)[1]
                if not any(param in SURROGATE_SPECS[s].free(scale) for s in surrogates for scale in scales):
                    raise ConfigError(
                        f"search.{r.key}",
                        param,
                        f"no searched surrogate has this parameter under model.surrogate_scale "
                        f"{' or '.join(scales)} ({', '.join(surrogates)}; under normalized, the width sets the "
                        "shape: search surrogate_width)",
                    )
            if r.path == "model.surrogate_width":
                if "normalized" not in scales:
                    raise ConfigError(f"search.{r.key}", r.high, "only with model.surrogate_scale normalized")
                widths = [s for s in surrogates if SURROGATE_SPECS[s].width is not None]
                if not widths:
                    raise ConfigError(f"search.{r.key}", r.high,
                                      f"no searched surrogate has a width ({', '.join(surrogates)})")
                for s in widths:  # the widest draw must suit every surrogate (sparse_fast_sigmoid: below its B)
                    _override(self.base, {"model.surrogate": s, "model.surrogate_scale": "normalized",
                                          r.path: r.high}, f"search.{r.key}")

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
        """How many combinations of the categorical choices there are, possible or not, counted without listing."""
        return math.prod(len(c.choices) for c in self.categorical)

    # ---- possible combinations ----
    #
    # Whether a combination can run is the run config's own verdict on it (``_problem``). A grid lists them
    # all (a grid is bounded: ``study._config.MAX_GRID``); a sampler draws one categorical at a time among the
    # choices that still lead to a possible combination, which a depth-first search finds without listing the
    # product (the first completion it tries is possible, unless the choices so far rule out every one).

    def _problem(self, cell: tuple) -> ConfigError | None:
        """Why the categorical combination ``cell`` cannot run, whatever the ranges draw (``None``: it can)."""
        if cell not in self._problems:
            values = {c.path: v for c, v in zip(self.categorical, cell)}
            for r in self.ranges:  # a window's longest draw: the most a range can give a combination
                if r.path in WINDOW_PATHS.values():
                    values.setdefault(r.path, int(r.high))
            try:
                _override(self.base, values, "search")
                self._problems[cell] = None
            except ConfigError as exc:  # the field, not the search key
                self._problems[cell] = ConfigError(exc.field.split(" -> ")[-1], exc.value, exc.allowed)
        return self._problems[cell]

    def _exists(self, fixed: Mapping[int, Any]) -> bool:
        """Whether a possible combination has the choices ``fixed`` (position -> value)."""
        key = tuple(sorted(fixed.items(), key=lambda kv: kv[0]))
        if key not in self._exists_memo:
            self._exists_memo[key] = self._complete((), fixed)
        return self._exists_memo[key]

    def _complete(self, prefix: tuple, fixed: Mapping[int, Any]) -> bool:
        i = len(prefix)
        if i == len(self.categorical):
            return self._problem(prefix) is None
        choices = [fixed[i]] if i in fixed else self.categorical[i].choices
        return any(self._complete((*prefix, c), fixed) for c in choices)

    def _describe(self, cell: tuple) -> str:
        return ", ".join(f"{c.key}={v}" for c, v in zip(self.categorical, cell))

    def _open(self, prefix: tuple, only: int | None = None) -> list:
        """The choices of the next categorical (after ``prefix``) that lead to a possible combination; with
        ``only``, consistent with ``prefix[only]`` alone."""
        i = len(prefix)
        keep = {j: prefix[j] for j in range(i) if only is None or j == only}
        return [c for c in self.categorical[i].choices if self._exists({**keep, i: c})]

    def _name(self, prefix: tuple) -> tuple[str, list]:
        """The Optuna name and the choices of the categorical after ``prefix``: its key where every choice
        is open, else ``<the earlier values that close some>.<key>`` (every earlier value where those
        alone do not say which are open)."""
        cat = self.categorical[len(prefix)]
        open_ = self._open(prefix)
        if len(open_) == len(cat.choices):
            return cat.key, open_
        culprits = [j for j in range(len(prefix)) if len(self._open(prefix, only=j)) < len(cat.choices)]
        if [c for c in cat.choices if all(c in self._open(prefix, only=j) for j in culprits)] != open_:
            culprits = list(range(len(prefix)))
        return ".".join([*(str(prefix[j]) for j in culprits), cat.key]), open_

    def _cells(self) -> list[tuple]:
        """Every combination of the categorical choices, in product order (a grid's: bounded by the caller)."""
        return list(itertools.product(*(c.choices for c in self.categorical)))

    def grid(self) -> list[dict[str, Any]]:
        """Every possible combination of the categorical choices, as Optuna params under the names
        :meth:`suggest` gives them (``{key: value}``, or ``{"alpha.backprop": value}`` where narrowed)."""
        return [{self._name(cell[:i])[0]: v for i, v in enumerate(cell)}
                for cell in self._cells() if self._problem(cell) is None]

    def excluded(self) -> list[tuple[str, str]]:
        """The impossible combinations of the categorical choices: ``(which, why)``, one per reason
        (``which`` names the smallest set of choices that is impossible on its own)."""
        out: dict[str, tuple[str, str]] = {}
        for cell in self._cells():
            problem = self._problem(cell)
            if problem is None:
                continue
            # the fewest of the cell's choices that no possible combination contains
            which = next(
                subset
                for size in range(1, len(cell) + 1)
                for subset in itertools.combinations(range(len(cell)), size)
                if not self._exists({j: cell[j] for j in subset})
            )
            text = " x ".join(f"{self.categorical[j].key}={cell[j]}" for j in which)
            out.setdefault(text, (text, f"{problem.field}: {problem.allowed}"))
        return list(out.values())

    def combinations(self) -> list[Combination]:
        """Every possible neuron x surrogate x backprop combination searched."""
        product = itertools.product(*(self.choices(p) for p in COMBINATION_PATHS))
        out = []
        for combo in product:
            try:
                self.restricted(Combination(*(str(v) for v in combo)))
            except ConfigError:
                continue  # impossible: every combination of the rest of the search with it is refused
            out.append(Combination(*(str(v) for v in combo)))
        return out

    def restricted(self, combination: Combination) -> SearchSpace:
        """The same space with ``combination``'s fields fixed (the space of one per-combination study);
        ConfigError when no combination of the rest of the search is possible with it."""
        fixed = combination.as_paths()
        base = _override(self.base, fixed, "search")
        # a shape the fixed surrogate lacks is not searched in its cell (suggest skips it too)
        search = {k: v for k, v in self.search.items()
                  if _resolve(str(k)) not in fixed and _shapes(base.model, _resolve(str(k)))}
        return SearchSpace(base, search)

    # ---- sampling ----

    def suggest(self, trial: optuna.trial.BaseTrial) -> TrialConfig:
        """The run config for ``trial``: categorical choices first, then the ranges that apply."""
        values: dict[str, Any] = {}
        prefix: tuple = ()
        for cat in self.categorical:
            name, choices = self._name(prefix)
            value = trial.suggest_categorical(name, choices)
            values[cat.path], prefix = value, (*prefix, value)
        current = _override(self.base, {**self._probe, **values}, "search")
        m, t = current.model, current.training
        neuron, surrogate = NEURON_SPECS[m.neuron], SURROGATE_SPECS[m.surrogate]
        window_path = WINDOW_PATHS.get(t.backprop)
        # beta before alpha: the alpha neuron's alpha range starts above the sampled beta
        for r in sorted(self.ranges, key=lambda r: r.path != "model.beta"):
            name, low, high = r.key, r.low, r.high
            if r.path == "training.tbptt_window" and t.backprop != "tbptt":
                continue
            if r.path == "model.alpha":
                if "alpha" not in neuron.params:
                    continue
                if neuron.name == "alpha":
                    beta = values.get("model.beta", m.beta)
                    low = max(low, beta + SMALLEST_GAP)
            if r.path == "model.beta" and neuron.name == "lapicque":
                low = max(low, 1 / math.e + SMALLEST_GAP)
            if r.path == "model.beta" and neuron.name == "alpha":
                high = min(high, 1 - SMALLEST_GAP)
                if self._range("model.alpha") is None:
                    high = min(high, m.alpha - SMALLEST_GAP)  # below the run config's alpha, which is not searched
            if r.path in DECAY_PATHS and m.gain == "matched":
                high = min(high, 1 - SMALLEST_GAP)  # at 1 the neuron has no leak and no finite gain
            if r.path == window_path:
                low = max(low, neuron.min_window(m.spiking_layers))  # the alpha neuron's delay
            if r.path == "model.surrogate_width" and (m.surrogate_scale != "normalized" or surrogate.width is None):
                continue
            if r.path.startswith("surrogate_args."):
                param = r.path.split(".", 1)[1]
                if param not in surrogate.free(m.surrogate_scale):
                    continue
                name = f"{surrogate.name}.{param}"
            elif (low, high) != (r.low, r.high):
                name = f"{neuron.name}.{r.key}"
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


def _shapes(model: ModelConfig, path: str) -> bool:
    """Whether ``path``, where it is a surrogate's shape (its width or one of its parameters), shapes
    ``model``'s surrogate; True for every other field."""
    surrogate = SURROGATE_SPECS[model.surrogate]
    if path == "model.surrogate_width":
        return model.surrogate_scale != "normalized" or surrogate.width is not None
    if path.startswith("surrogate_args."):
        return path.split(".", 1)[1] in surrogate.free(model.surrogate_scale)
    return True


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

    A new surrogate (or scale) keeps only those of the base's shape parameters it takes.
    """
    values = dict(values)
    if ("model.surrogate" in values or "model.surrogate_scale" in values) and "model.surrogate_args" not in values:
        surrogate = values.get("model.surrogate", base.model.surrogate)
        scale = values.get("model.surrogate_scale", base.model.surrogate_scale)
        own = SURROGATE_SPECS[surrogate].params if surrogate in SURROGATE_SPECS else {}
        if scale == "normalized" and surrogate in SURROGATE_SPECS:
            own = SURROGATE_SPECS[surrogate].free(scale)
        values["model.surrogate_args"] = {k: v for k, v in base.model.surrogate_args.items() if k in own}
    try:
        return base.replace(**values)
    except ConfigError as exc:
        raise ConfigError(f"{where} -> {exc.field}", exc.value, exc.allowed) from None
