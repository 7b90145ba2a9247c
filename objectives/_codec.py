"""The combination codec: the factors a study compares and every name built from them.

A combination is one neuron x surrogate x backprop. This module is the one place that
knows where each factor sits in a run config (``model.neuron``), how a combination is
shown (``leaky / atan / bptt``), how it names a per-combination study
(``<study>::<neuron>/<surrogate>/<backprop>``) and a file (``leaky-atan-bptt``), and
how each of those is read back.

Study names: a per-combination study is its parent's name, the separator ``::``, an
optional stage (``tune::``, ``replicate::``) and the three parts, each percent-encoded
(so a name holding ``-``, ``/`` or ``:`` round-trips). A user's study name may not
contain ``::``, so no study of a user can be taken for another's per-combination study.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

#: the factors every study compares -> (config section, field)
FACTORS: dict[str, tuple[str, str]] = {
    "neuron": ("model", "neuron"),
    "surrogate": ("model", "surrogate"),
    "backprop": ("training", "backprop"),
}
#: the factor names, in display order
COMBINATION: tuple[str, ...] = tuple(FACTORS)
#: the factors' dotted config paths, in the same order
COMBINATION_PATHS: tuple[str, ...] = tuple(f"{s}.{f}" for s, f in FACTORS.values())
#: what a study's best configurations can be grouped by (``snn-study best --by``) -> (section, field)
GROUP_FIELDS: dict[str, tuple[str, str]] = {
    **FACTORS,
    "encoding": ("model", "encoding"),
    "loss": ("training", "loss"),
    "optimizer": ("training", "optimizer"),
}
#: the separator between a study's name and a per-combination study's own part
STUDY_SEPARATOR = "::"
#: the stages a per-combination study can belong to (the comparison protocol's)
STAGES = ("tune", "replicate")
#: what a factor shows when nothing says its value (a trial of another tool, a waiting trial)
UNKNOWN = "?"


def config_value(config: Mapping[str, Any] | None, field: str) -> Any:
    """The value of ``field`` (a :data:`GROUP_FIELDS` name) in a run config's dict form, ``None`` when absent."""
    section, name = GROUP_FIELDS[field]
    part = (config or {}).get(section)
    return part.get(name) if isinstance(part, Mapping) else None


@dataclass(frozen=True, order=True)
class Combination:
    """One neuron x surrogate x backprop; :data:`UNKNOWN` where nothing says."""

    neuron: str
    surrogate: str
    backprop: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> Combination:
        """From a run config's dict form (``{"model": {"neuron": ...}, ...}``)."""
        return cls(*(_text(config_value(config, f)) for f in COMBINATION))

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Combination:
        """From Optuna parameters (or a queued trial's fixed parameters), whose names are the search
        keys a user wrote: a bare factor name (``neuron``) or its dotted path (``model.neuron``)."""
        values = []
        for factor, path in zip(COMBINATION, COMBINATION_PATHS):
            values.append(_text(params[factor] if factor in params else params.get(path)))
        return cls(*values)

    def as_dict(self) -> dict[str, str]:
        """``{"neuron": ..., "surrogate": ..., "backprop": ...}``."""
        return {f: getattr(self, f) for f in COMBINATION}

    def as_paths(self) -> dict[str, str]:
        """``{"model.neuron": ..., "model.surrogate": ..., "training.backprop": ...}``: run-config overrides."""
        return {path: getattr(self, f) for f, path in zip(COMBINATION, COMBINATION_PATHS)}

    @property
    def known(self) -> bool:
        """Whether every factor is known."""
        return UNKNOWN not in self.as_dict().values()

    @property
    def label(self) -> str:
        """``"leaky / atan / bptt"``, for tables and figures."""
        return " / ".join(self.as_dict().values())

    def merged(self, other: Combination) -> Combination:
        """This combination with its unknown factors taken from ``other``."""
        pairs = zip(self.as_dict().values(), other.as_dict().values())
        return Combination(*(a if a != UNKNOWN else b for a, b in pairs))


def _text(value: Any) -> str:
    return UNKNOWN if value is None else str(value)


def file_stem(values: Mapping[str, Any] | tuple[Any, ...]) -> str:
    """A file name stem from values (``leaky-atan-bptt``) that stays one plain name in its folder whatever the
    values hold: each is percent-encoded (``/``, ``\\``, ``:`` and the like), and a leading dot too."""
    parts = values.values() if isinstance(values, Mapping) else values
    return "-".join(path_part(v) for v in parts)


def path_part(value: Any) -> str:
    """``value`` as one component of a path, never a folder change: percent-encoded outside
    ``[A-Za-z0-9_.-]``, a leading ``.`` encoded (no ``..``, no hidden file), never empty."""
    text = quote(str(value), safe="")
    if text.startswith("."):
        text = "%2E" + text[1:]
    return text or "%00"


def study_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a user's study name (``None`` when it can)."""
    if STUDY_SEPARATOR in name:
        return f"{STUDY_SEPARATOR!r} is reserved for per-combination studies; choose a name without it"
    return None


def cell_study_name(parent: str, combination: Combination, stage: str | None = None) -> str:
    """The study of one combination of study ``parent`` (in a comparison, of one ``stage``)."""
    if stage is not None and stage not in STAGES:
        raise ValueError(f"stage={stage!r} is not one of {', '.join(STAGES)}")
    cell = "/".join(quote(v, safe="") for v in combination.as_dict().values())
    return STUDY_SEPARATOR.join([parent, *([stage] if stage else []), cell])


@dataclass(frozen=True)
class CellStudy:
    """What a per-combination study's name says: its parent study, its stage (or ``None``) and its combination."""

    parent: str
    stage: str | None
    combination: Combination


def parse_study_name(name: str) -> CellStudy | None:
    """The parts of a per-combination study's name, or ``None`` for any other name."""
    pieces = name.split(STUDY_SEPARATOR)
    if len(pieces) == 2:
        parent, stage, cell = pieces[0], None, pieces[1]
    elif len(pieces) == 3 and pieces[1] in STAGES:
        parent, stage, cell = pieces
    else:
        return None
    parts = cell.split("/")
    if not parent or len(parts) != len(COMBINATION) or not all(parts):
        return None
    return CellStudy(parent, stage, Combination(*(unquote(p) for p in parts)))


def belongs_to(study_name: str, name: str) -> bool:
    """Whether ``study_name`` is study ``name`` itself or one of its per-combination studies."""
    if study_name == name:
        return True
    cell = parse_study_name(study_name)
    return cell is not None and cell.parent == name
