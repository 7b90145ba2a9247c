"""Running a study from Python as ``snn-study run`` runs it: :func:`run_study` for notebooks and scripts."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna

from objectives import ConfigError, apply_overrides

from ._config import MAX_GRID, PRESETS, StudyConfig, load_preset
from ._yaml import YamlProblem, load, read


def study_config(config: Mapping[str, Any] | str | Path, overrides: Mapping[str, Any] | None = None) -> StudyConfig:
    """The validated study config of ``config`` (a parsed config, a preset's name or a YAML file's path) with
    ``{"section.field": value}`` ``overrides`` set as ``--set`` sets them (``search.<key>`` adds or replaces one
    search key, which may itself hold dots)."""
    if isinstance(config, Mapping):
        raw = dict(config)
    elif isinstance(config, str) and config in PRESETS:
        raw = load_preset(config)
    else:
        raw = _read(Path(config))
    overrides = dict(overrides or {})
    # search keys may contain dots (search.model.beta): only the first dot splits off the section
    search = {k.split(".", 1)[1]: v for k, v in overrides.items() if k.startswith("search.")}
    raw = apply_overrides(raw, {k: v for k, v in overrides.items() if not k.startswith("search.")})
    if search:
        raw["search"] = {**(raw.get("search") or {}), **search}
    return StudyConfig.from_dict(raw)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = load(read(str(path)))
    except OSError as exc:
        why = f"cannot read it ({exc.strerror}); give a study config's path or a preset: {', '.join(PRESETS)}"
        raise ConfigError("config", str(path), why) from None
    except YamlProblem as exc:
        raise ConfigError("config", str(path), str(exc)) from None
    if not isinstance(data, dict):
        raise ConfigError("config", str(path), f"expected a mapping of sections, got {type(data).__name__}")
    return data


def check_datasets(cfg: StudyConfig) -> None:
    """Read every dataset the study can use once, before the storage is touched: a dataset
    missing offline is a usage error that writes nothing."""
    from objectives import load as load_data

    from ._space import FIELDS

    for name in cfg.search.choices(FIELDS["dataset"]):
        load_data(cfg.search.base.replace(**{"dataset.name": name}).dataset)


def start(cfg: StudyConfig, quiet: bool = False, debug: bool = False, wait: bool = False) -> int:
    """Check ``cfg`` against this machine and its storage, say what runs where on one line, and run its workers
    (or launch them: ``wait`` follows a launched job). Returns the exit code of ``snn-study run``: 0 when every
    study is complete, 1 when not, 130 or 143 when interrupted."""
    from storage import open_existing, open_storage, shown_url

    from ._launchers import launcher_for
    from ._limits import check_machine, devices_shown
    from ._objectives import pruner_shown
    from ._runner import preflight, run

    launcher = launcher_for(cfg)  # a launched study's storage and artifact rules, before anything is written
    check_machine(cfg)
    check_datasets(cfg)
    # a bad or unreachable storage is a usage error before anything starts, and so is a study this run must not
    # join: checked on the database as it is, before anything is created in it
    preflight(cfg, open_existing(cfg.study.storage))
    open_storage(cfg.study.storage, heartbeat_interval=None)
    # our own per-trial lines say how each trial ended; Optuna would repeat them with tracebacks
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # a grid's impossible combinations are listed (a sampler never draws one, and a larger space is not listed)
    excluded = cfg.search.excluded() if cfg.search.grid_size() <= MAX_GRID else []
    if excluded:
        # first, one line: the combinations no trial runs, and why (the run config refuses them)
        print("snn-study run: leaving out the combinations that cannot learn by construction: "
              + "; ".join(f"{which} ({why})" for which, why in excluded), file=sys.stderr)
    studies = cfg.studies()
    total = sum(cfg.target(s) for _, s in studies)
    where = "on each task's own device" if launcher is not None else f"on {devices_shown(cfg)}"
    print(f"study {cfg.study.name!r}: {len(studies)} stud{'y' if len(studies) == 1 else 'ies'}, {total} trials, "
          f"sampler {cfg.study.sampler}, pruner {pruner_shown(cfg.study)}, {cfg.study.workers} worker(s) {where}, "
          f"storage {shown_url(cfg.study.storage)}", file=sys.stderr)
    if launcher is not None:
        return launcher.launch(cfg, quiet, wait)
    return run(cfg, quiet=quiet, debug=debug)


def run_study(
    config: Mapping[str, Any] | str | Path, overrides: Mapping[str, Any] | None = None, *, quiet: bool = True
) -> list[optuna.Study]:
    """Run (or resume) a study as ``snn-study run`` does and return its Optuna studies.

    ``config`` is a study config as parsed YAML (a dict), a preset's name (``"quick"``) or a YAML file's path;
    ``overrides`` sets fields as ``--set`` does (``{"training.epochs": 3, "search.neuron": ["leaky"]}``).
    The return value is always a list of ``optuna.Study``, in the order the config runs them: one study, or one
    per neuron x surrogate x backprop combination when the config asks for them (``study.per_combination``;
    each named ``<name>::<neuron>/<surrogate>/<backprop>``). ``quiet=False`` prints the per-epoch lines.

    Bad input raises :class:`objectives.ConfigError` before anything is written; a run whose studies are not
    complete (a worker failed) raises ``RuntimeError`` (the same call again resumes it), and Ctrl-C raises
    ``KeyboardInterrupt`` once the running trials are failed as interrupted (re-queued when the study resumes).
    """
    from storage import open_storage

    cfg = study_config(config, overrides)
    code = start(cfg, quiet=quiet)
    if code in (130, 143):
        raise KeyboardInterrupt(f"study {cfg.study.name!r} interrupted; run_study again resumes it")
    if code != 0:
        raise RuntimeError(f"study {cfg.study.name!r} is not complete (exit {code}); run_study again resumes it")
    storage = open_storage(cfg.study.storage, heartbeat_interval=None, create=False)
    return [optuna.load_study(study_name=name, storage=storage) for name, _ in cfg.studies()]
