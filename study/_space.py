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
    TrialConfig,
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
                self.ranges.append(Range(key, path, value, value, fixed=True))
            else:
                fixed[path] = value
        self.base = _override(base, fixed, "search")
        self._check()
        #: every combination of the categorical choices, in product order, with why it is impossible (or None)
        self._cells = [(cell, self._cell_problem(cell)) for cell in itertools.product(
            *(c.choices for c in self.categorical))]
        first = self._cells[0]
        if all(problem is not None for _, problem in self._cells) and first[1] is not None:
            raise ConfigError(
                "search", self._describe(first[0]), f"every combination of the search is impossible, e.g. this "
                f"one: {first[1].field}: {first[1].allowed}"
            )

    # ---- validation: every value the sampler can produce must make a valid run config ----

    def _check(self) -> None:
        for cat in self.categorical:
            for choice in cat.choices:
                _override(self.base, {cat.path: choice}, f"search.{cat.key}")
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
                if r.path in WINDOW_PATHS.values():
                    # a neuron's delay raises a window range's floor when sampling (the alpha neuron's);
                    # a combination its ceiling cannot reach is left out
                    values["model.neuron"] = next(n for n, spec in NEURON_SPECS.items() if spec.delay == 0)
                _override(self.base, values, f"search.{r.key}")
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

    # ---- possible combinations ----

    def _cell_problem(self, cell: tuple) -> ConfigError | None:
        """Why the categorical combination ``cell`` cannot run, whatever the ranges draw (``None``: it can)."""
        values = {c.path: v for c, v in zip(self.categorical, cell)}
        for r in self.ranges:  # a window's longest draw: the most a range can give a combination
            if r.path in WINDOW_PATHS.values():
                values.setdefault(r.path, int(r.high))
        try:
            _override(self.base, values, "search")
        except ConfigError as exc:
            return ConfigError(exc.field.split(" -> ")[-1], exc.value, exc.allowed)  # the field, not the search key
        return None

    def _describe(self, cell: tuple) -> str:
        return ", ".join(f"{c.key}={v}" for c, v in zip(self.categorical, cell))

    def _open(self, prefix: tuple, only: int | None = None) -> list:
        """The choices of the next categorical (after ``prefix``) that lead to a possible combination; with
        ``only``, consistent with ``prefix[only]`` alone."""
        i = len(prefix)
        keep = [j for j in range(i) if only is None or j == only]
        return [c for c in self.categorical[i].choices
                if any(problem is None and cell[i] == c and all(cell[j] == prefix[j] for j in keep)
                       for cell, problem in self._cells)]

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

    def grid(self) -> list[dict[str, Any]]:
        """Every possible combination of the categorical choices, as Optuna params under the names
        :meth:`suggest` gives them (``{key: value}``, or ``{"alpha.backprop": value}`` where narrowed)."""
        out = []
        for cell, problem in self._cells:
            if problem is None:
                out.append({self._name(cell[:i])[0]: v for i, v in enumerate(cell)})
        return out

    def excluded(self) -> list[tuple[str, str]]:
        """The impossible combinations of the categorical choices: ``(which, why)``, one per reason
        (``which`` names the smallest set of choices that is impossible on its own)."""
        out: dict[str, tuple[str, str]] = {}
        for cell, problem in self._cells:
            if problem is None:
                continue
            # the fewest of the cell's choices that no possible combination contains
            which = next(
                subset
                for size in range(1, len(cell) + 1)
                for subset in itertools.combinations(range(len(cell)), size)
                if not any(p is None and all(other[j] == cell[j] for j in subset) for other, p in self._cells)
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
        search = {k: v for k, v in self.search.items() if _resolve(str(k)) not in fixed}
        return SearchSpace(_override(self.base, fixed, "search"), search)

    # ---- sampling ----

    def suggest(self, trial: optuna.trial.BaseTrial) -> TrialConfig:
        """The run config for ``trial``: categorical choices first, then the ranges that apply."""
        values: dict[str, Any] = {}
        prefix: tuple = ()
        for cat in self.categorical:
            name, choices = self._name(prefix)
            value = trial.suggest_categorical(name, choices)
            values[cat.path], prefix = value, (*prefix, value)
        current = _override(self.base, values, "search")
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


def _range(key: str, path: str, spec: Mapping[str, Any]) -> Range:
    allowed = {"low", "high", "log", "step"}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ConfigError(f"search.{key}.{unknown[0]}", spec[unknown[0]], "allowed: low, high, log, step")
    for bound in ("low", "high"):
        if bound not in spec:
            raise ConfigError(f"search.{key}", dict(spec), f"a range needs {bound}")
        if not isinstance(spec[bound], (int, float)) or isinstance(spec[bound], bool):
            raise ConfigError(f"search.{key}.{bound}", spec[bound], "expected a number")
    low, high = spec["low"], spec["high"]
    if low > high:
        raise ConfigError(f"search.{key}", dict(spec), f"low ({low}) must be <= high ({high})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"search.{key}.log", log, "expected true or false")
    if log and low <= 0:
        raise ConfigError(f"search.{key}.low", low, "a log range needs low > 0")
    step = spec.get("step")
    if step is not None and (not isinstance(step, (int, float)) or step <= 0):
        raise ConfigError(f"search.{key}.step", step, "expected a positive number")
    if log and step is not None:
        raise ConfigError(f"search.{key}.step", step, "a log range cannot have a step")
    integer = _is_integer_field(path)
    return Range(key, path, float(low), float(high), log, step, integer)


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
