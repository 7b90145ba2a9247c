"""The study config (YAML): ``study``, the run-config sections, and ``search``.

Validated once, before anything is written: :meth:`StudyConfig.from_dict` raises
``ConfigError`` with one line naming the field, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, get_type_hints

from objectives import (
    COMBINATION_PATHS,
    SECTIONS,
    ConfigError,
    TrialConfig,
    cell_study_name,
    coerce,
    plain,
    study_name_problem,
)
from storage import DEFAULT_URL

from ._launch import LauncherConfig
from ._limits import check_settings
from ._objectives import DEFAULT_OBJECTIVES, parse_objectives
from ._pruners import PRUNERS, PrunerConfig
from ._samplers import SAMPLERS
from ._space import SearchSpace
from ._spawn import WORKERS_PER_CPU, max_workers
from ._stages import CompareSettings
from ._yaml import load

PRESETS = ("quick", "mnist-grid", "mnist-tpe", "compare-quick", "mnist-compare")
#: combinations a grid study may queue (each is a trial in the database); 4 neurons x 8 surrogates x 3 backprop
#: methods are 96, and a grid of more than this many trials is better searched by a sampler
MAX_GRID = 10_000
#: most trials one worker trains as one fused array: what one Ctrl-C or failure interrupts at once
MAX_ARRAY_SIZE = 64


@dataclass(frozen=True)
class StudySettings:
    """The ``study`` section: where trials live and how they are chosen, pruned and run."""

    name: str = "snn-study"
    storage: str = DEFAULT_URL
    sampler: str = "tpe"
    #: the sampler's seed: a study run in one go by one worker proposes the same trials every time; each worker and
    #: each resumption draws its own stream (``study._samplers.make_sampler``)
    seed: int = 0
    #: ``[val_acc]``, or ``[val_acc, <cost metric>, ...]``: a study of several objectives (``study._objectives``)
    objectives: tuple[str, ...] = DEFAULT_OBJECTIVES
    pruner: PrunerConfig = field(default_factory=PrunerConfig)
    #: finished (complete or pruned) trials to reach; for ``grid``, the number of combinations
    n_trials: int | None = None
    workers: int = 1
    #: one study per neuron-surrogate-backprop combination, each tuning the numeric parameters
    per_combination: bool = False
    #: devices to spread the workers over, e.g. ``[cuda:0, cuda:1]``; ``None``: ``training.device``
    devices: tuple[str, ...] | None = None
    #: artifact folder for non-SQLite storages (SQLite: ``artifacts/`` beside the database)
    artifacts: str | None = None
    #: seconds between a running trial's heartbeats; one silent for ``grace_period`` seconds
    #: (its worker died) is failed and re-queued by the next worker that starts a trial
    heartbeat_interval: int = 10
    grace_period: int = 30
    #: trials a worker trains at once as one fused trial array (``objectives.train_array``); ``None``:
    #: ``objectives.default_array_size`` for the worker's device (1 on a CPU, where arrays are no faster)
    array_size: int | None = None


@dataclass(frozen=True)
class StudyConfig:
    """A validated study: settings, the base run config and the search space."""

    study: StudySettings
    search: SearchSpace
    raw: Mapping[str, Any]
    #: where the workers run (``launcher`` section): this machine, or a Slurm job array
    launcher: LauncherConfig = field(default_factory=LauncherConfig)
    #: the ``compare`` section (``snn-study compare``), ``None`` when the config has none
    compare: CompareSettings | None = None
    #: a stage of a comparison (``study._stages``): its name and ``(study name, search space)`` of each study
    stage: str | None = None
    stage_studies: tuple[tuple[str, SearchSpace], ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> StudyConfig:
        """Build and check a study config from parsed YAML."""
        data = dict(data or {})
        allowed = ("study", *SECTIONS, "search", "launcher", "compare")
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ConfigError(unknown[0], data[unknown[0]], f"unknown section; allowed: {', '.join(allowed)}")
        settings = _settings(data.get("study"))
        base = TrialConfig.from_dict({k: data[k] for k in SECTIONS if k in data})
        search = data.get("search") or {}
        if not isinstance(search, Mapping):
            raise ConfigError("search", search, "expected a mapping of run-config fields to choices, ranges or values")
        space = SearchSpace(base, search)
        compare = CompareSettings.from_value(data["compare"], base.training.seed) if "compare" in data else None
        n_grid = space.grid_size()  # counted, not listed: only a grid sampler's grid is ever listed
        if SAMPLERS[settings.sampler].queued_grid:
            if n_grid > MAX_GRID:
                raise ConfigError("search", f"{n_grid} combinations", f"the grid sampler queues one trial per "
                                  f"combination, at most {MAX_GRID}; search fewer values or use study.sampler: tpe")
            settings = dataclasses.replace(settings, n_trials=len(space.grid()))  # the possible combinations
        elif settings.n_trials is None and compare is None:
            raise ConfigError("study.n_trials", None, f"set how many trials the {settings.sampler!r} sampler runs")
        if settings.per_combination or compare is not None:
            for path in COMBINATION_PATHS:
                if not any(c.path == path for c in space.categorical) and len(space.choices(path)) != 1:
                    field = "compare" if compare is not None else "study.per_combination"
                    raise ConfigError(field, True, f"needs {path} in search or fixed")
        return cls(settings, space, data, LauncherConfig.from_value(data.get("launcher")), compare)

    def studies(self) -> list[tuple[str, SearchSpace]]:
        """``(study name, search space)`` for each study this config runs: one, or one per combination."""
        if self.stage is not None:
            return list(self.stage_studies)
        if not self.study.per_combination:
            return [(self.study.name, self.search)]
        return [(cell_study_name(self.study.name, c), self.search.restricted(c)) for c in self.search.combinations()]

    @property
    def queued_grid(self) -> bool:
        """Whether the study runs every categorical combination once, from Optuna's queue (``grid``)."""
        return SAMPLERS[self.study.sampler].queued_grid

    @property
    def queued(self) -> bool:
        """Whether every trial of a study comes from Optuna's queue, each claimed by one worker: the grid's
        combinations, or a comparison stage's trials (exactly its budget per cell, never one more)."""
        return self.queued_grid or self.stage is not None

    def queue(self, space: SearchSpace) -> list[dict[str, Any]]:
        """The parameters of each trial a queued study over ``space`` runs; ``{}`` leaves them to the sampler."""
        if self.stage == "tune" and self.compare is not None:
            return [{}] * self.compare.trials_per_cell
        return space.grid()

    def target(self, space: SearchSpace) -> int:
        """Finished trials one study of this config should reach."""
        if self.queued or self.study.n_trials is None:  # from_dict sets n_trials for every other sampler
            return len(self.queue(space))
        return self.study.n_trials

    def to_dict(self) -> dict[str, Any]:
        """The config as given, with the ``study`` section resolved (storage, name, trials), and ``compare`` (seeds)."""
        out = dict(self.raw)
        out["study"] = plain(dataclasses.asdict(self.study))
        if self.compare is not None:
            out["compare"] = plain(dataclasses.asdict(self.compare))
        return out


def load_preset(name: str) -> dict[str, Any]:
    """The parsed YAML of a built-in preset."""
    if name not in PRESETS:
        raise ConfigError("--preset", name, f"allowed: {', '.join(PRESETS)}")
    return load((resources.files("study") / "presets" / f"{name}.yaml").read_text(encoding="utf-8"))


def _settings(data: Any) -> StudySettings:
    if data is None:
        return StudySettings()
    if not isinstance(data, Mapping):
        raise ConfigError("study", data, "expected a mapping of fields")
    names = [f.name for f in dataclasses.fields(StudySettings)]
    values: dict[str, Any] = {}
    hints = get_type_hints(StudySettings)
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"study.{key}", value, f"unknown field; allowed: {', '.join(names)}")
        if key == "pruner":
            values[key] = PrunerConfig.from_value(value)
        elif key == "objectives":
            values[key] = parse_objectives(value)
        elif key == "devices":
            if value is not None and not (isinstance(value, list) and all(isinstance(d, str) for d in value)):
                raise ConfigError("study.devices", value, "expected a list like [cuda:0, cuda:1]")
            values[key] = tuple(value) if value else None
        else:
            values[key] = coerce(f"study.{key}", value, hints[key])
    settings = StudySettings(**values)
    if settings.sampler not in SAMPLERS:
        raise ConfigError("study.sampler", settings.sampler, f"allowed: {', '.join(SAMPLERS)}")
    if not settings.name or any(c in settings.name for c in "\n\t"):
        raise ConfigError("study.name", settings.name, "expected a non-empty name on one line")
    problem = study_name_problem(settings.name)
    if problem:
        raise ConfigError("study.name", settings.name, problem)
    if settings.n_trials is not None and settings.n_trials < 1:
        raise ConfigError("study.n_trials", settings.n_trials, "must be >= 1")
    if settings.heartbeat_interval < 1 or settings.grace_period <= settings.heartbeat_interval:
        raise ConfigError("study.grace_period", settings.grace_period,
                          f"must be > study.heartbeat_interval ({settings.heartbeat_interval}) and both >= 1")
    if settings.workers < 1:
        raise ConfigError("study.workers", settings.workers, "must be >= 1")
    if settings.array_size is not None and not 1 <= settings.array_size <= MAX_ARRAY_SIZE:
        raise ConfigError("study.array_size", settings.array_size, f"must be from 1 to {MAX_ARRAY_SIZE}, or null")
    if settings.workers > max_workers():
        raise ConfigError("study.workers", settings.workers, f"at most {max_workers()} on this machine "
                          f"({WORKERS_PER_CPU} per CPU core); more machines share a study through one PostgreSQL URL")
    check_settings(settings)
    return settings


__all__ = ["PRESETS", "PRUNERS", "StudyConfig", "StudySettings", "load_preset"]
