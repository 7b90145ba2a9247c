"""The comparison protocol's settings (the ``compare`` section) and its two stages as study configs.

``snn-study compare`` runs a study config in two stages, each an ordinary set of Optuna studies that
the runner's workers share (``study._runner.run``), one study per neuron x surrogate x backprop cell:

tune (``<name>::tune::<cell>``)
    Every cell gets exactly ``compare.trials_per_cell`` trials from the study's sampler, over the same
    search space for the fields the cells share, at the tuning seed ``training.seed``. The trials are
    queued (empty: the sampler chooses their parameters when a worker claims one), so that parallel
    workers can neither give a cell one trial more nor one less. Each cell has its own pruner: a trial
    is pruned only against trials of its own cell, whatever order the cells run in.
replicate (``<name>::replicate::<cell>``)
    Each cell's best tuning trial by validation accuracy (:func:`tuned_trial`) is trained again, with
    its hyperparameters unchanged, once per seed of ``compare.seeds``, to ``training.epochs`` and
    without pruning: a queued grid over ``training.seed``. The seeds are the same in every cell, so
    that cells can be compared seed by seed, and none is the tuning seed: the run the tuning selected
    would count its own luck twice. The test accuracies of these runs are what the comparison ranks.

Both stages record their trials as any study does (per-epoch metrics, weights as artifacts, the
trial's ``stage`` in its :class:`objectives.TrialRecord`), so reports and the dashboard read them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from objectives import Combination, ConfigError, TrialConfig, TrialRecord, cell_study_name

from ._pruners import PrunerConfig
from ._space import SearchSpace

if TYPE_CHECKING:
    from ._config import StudyConfig

#: what the comparison can rank on: a replicate's test accuracy (of its best-validation weights) or its best
#: validation accuracy
METRICS = {"test_acc": "test accuracy", "val_acc": "validation accuracy"}
DEFAULT_SEEDS = 5


@dataclass(frozen=True)
class CompareSettings:
    """The ``compare`` section: the budget of each stage and the statistics' level."""

    #: tuning trials every cell gets (stage tune), the same for each
    trials_per_cell: int = 10
    #: the replicate seeds, the same in every cell; a count n in the YAML means the n seeds after the tuning
    #: seed (``training.seed + 1`` ...), a list is taken as it is (without the tuning seed)
    seeds: tuple[int, ...] = ()
    #: significance level of the tests and 1 - the confidence of the intervals
    alpha: float = 0.05
    #: the value ranked: ``test_acc`` or ``val_acc`` of each replicate
    metric: str = "test_acc"

    @classmethod
    def from_value(cls, value: Any, tuning_seed: int) -> CompareSettings:
        """From the section's mapping (``None``: every default); ``ConfigError`` on the field at fault."""
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise ConfigError("compare", value, "expected a mapping of fields: trials_per_cell, seeds, alpha, metric")
        names = [f.name for f in dataclasses.fields(cls)]
        for key, v in value.items():
            if key not in names:
                raise ConfigError(f"compare.{key}", v, f"unknown field; allowed: {', '.join(names)}")
        trials = value.get("trials_per_cell", cls.trials_per_cell)
        if not _is_int(trials) or trials < 1:
            raise ConfigError("compare.trials_per_cell", trials, "expected an integer >= 1")
        alpha = value.get("alpha", cls.alpha)
        if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not 0 < alpha < 0.5:
            raise ConfigError("compare.alpha", alpha, "expected a number within (0, 0.5), e.g. 0.05")
        metric = value.get("metric", cls.metric)
        if metric not in METRICS:
            raise ConfigError("compare.metric", metric, f"allowed: {', '.join(METRICS)}")
        return cls(trials_per_cell=trials, seeds=_seeds(value.get("seeds", DEFAULT_SEEDS), tuning_seed),
                   alpha=float(alpha), metric=metric)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _seeds(value: Any, tuning_seed: int) -> tuple[int, ...]:
    if _is_int(value):
        if value < 2:
            raise ConfigError("compare.seeds", value, "expected at least 2 seeds (a spread needs two), or a list")
        return tuple(range(tuning_seed + 1, tuning_seed + 1 + value))
    if not isinstance(value, list) or not all(_is_int(s) for s in value):
        raise ConfigError("compare.seeds", value, "expected a count (e.g. 5) or a list of integers")
    if len(value) < 2 or len(set(value)) != len(value):
        raise ConfigError("compare.seeds", value, "expected at least 2 different seeds")
    if tuning_seed in value:
        raise ConfigError("compare.seeds", value, f"must not hold the tuning seed training.seed ({tuning_seed}): "
                                                  "the tuned run's luck would count twice")
    return tuple(value)


def tune_config(cfg: StudyConfig) -> StudyConfig:
    """The stage tune of comparison ``cfg``: one study per cell over the cell's search space, the study's sampler
    and pruner, ``compare.trials_per_cell`` queued trials each."""
    studies = tuple((cell_study_name(cfg.study.name, c, "tune"), cfg.search.restricted(c))
                    for c in cfg.search.combinations())
    return dataclasses.replace(cfg, stage="tune", stage_studies=studies)


def replicate_config(cfg: StudyConfig, storage: optuna.storages.BaseStorage) -> StudyConfig:
    """The stage replicate of comparison ``cfg``, whose tune stage in ``storage`` is done: per cell, its tuned
    configuration once per seed of ``compare.seeds`` (a queued grid over ``training.seed``), never pruned."""
    seeds = list(_settings(cfg).seeds)
    studies = []
    for combination in cfg.search.combinations():
        tuned = tuned_config(cfg, combination, storage)
        studies.append((cell_study_name(cfg.study.name, combination, "replicate"),
                        SearchSpace(tuned, {"training.seed": seeds})))
    study = dataclasses.replace(cfg.study, sampler="grid", pruner=PrunerConfig(name="none"))
    return dataclasses.replace(cfg, study=study, stage="replicate", stage_studies=tuple(studies))


def _settings(cfg: StudyConfig) -> CompareSettings:
    if cfg.compare is None:
        raise ConfigError("compare", None, "this study config has no compare section")
    return cfg.compare


def tuned_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The trial of a tune study whose configuration the comparison replicates.

    The complete trial with the highest validation accuracy (the lowest number among equals); where no trial
    completed, the pruned trial with the highest validation accuracy at any epoch it reported; where none
    reported one (every trial diverged), the first trial done, whose replicates then record how they fail.
    ``None`` while the study has no trial done.
    """
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if complete:
        return max(complete, key=lambda t: (t.value, -t.number))
    reported = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    if reported:
        return max(reported, key=lambda t: (max(t.intermediate_values.values()), -t.number))
    failed = [t for t in trials
              if t.state == TrialState.FAIL and TrialRecord.from_frozen_trial(study.study_name, t).done]
    return failed[0] if failed else None


def tuned_config(cfg: StudyConfig, combination: Combination, storage: optuna.storages.BaseStorage) -> TrialConfig:
    """The run config of ``combination``'s tuned trial (:func:`tuned_trial`), rebuilt from its parameters in the
    cell's search space (so the device and data folder are the study's, not one worker's)."""
    name = cell_study_name(cfg.study.name, combination, "tune")
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise ConfigError("compare", cfg.study.name, f"no tune study {name!r}: the stage tune has not run") from None
    best = tuned_trial(study)
    if best is None:
        raise ConfigError("compare", cfg.study.name, f"{name!r} has no trial done: finish the stage tune first")
    return cfg.search.restricted(combination).suggest(optuna.trial.FixedTrial(dict(best.params)))


#: a stage's name -> how its study config is made from the comparison's (the replicate stage reads the storage)
STAGE_CONFIGS = {
    "tune": lambda cfg, storage: tune_config(cfg),
    "replicate": replicate_config,
}


def stage_config(cfg: StudyConfig, stage: str, storage: optuna.storages.BaseStorage) -> StudyConfig:
    """The study config of ``stage`` (``tune`` or ``replicate``) of comparison ``cfg``."""
    if stage not in STAGE_CONFIGS:
        raise ConfigError("--stage", stage, f"allowed: {', '.join(STAGE_CONFIGS)}")
    return STAGE_CONFIGS[stage](cfg, storage)


def check_replicates(stage: StudyConfig, storage: optuna.storages.BaseStorage) -> None:
    """Refuse a replicate stage whose studies already hold runs of another configuration than the one each cell's
    tuning selects now (its tune stage got other trials since): their seeds would be pooled with the new ones."""
    for name, space in stage.studies():
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            continue  # not started yet
        tuned = _comparable(space.base.resolved().to_dict())
        for t in study.get_trials(deepcopy=False):
            config = TrialRecord.from_frozen_trial(name, t).config
            if config is not None and _comparable(config) != tuned:
                raise ConfigError("compare", stage.study.name, f"{name!r} holds replicates of another configuration "
                                  "than its tuning selects now (the tune stage changed since); give the comparison "
                                  "a new study.name")


def _comparable(config: Mapping[str, Any]) -> dict[str, Any]:
    """A resolved run config without what may differ between replicates of one configuration: the seed, and where
    a worker ran it (device, data folder)."""
    out = {section: dict(values) for section, values in config.items()}
    for section, field in (("training", "seed"), ("training", "device"), ("dataset", "root")):
        out.get(section, {}).pop(field, None)
    return out


def total_trials(cfg: StudyConfig) -> dict[str, int]:
    """Trials each stage of comparison ``cfg`` runs: ``{"tune": cells x trials_per_cell, "replicate": cells x
    seeds}``."""
    settings = _settings(cfg)
    cells = len(cfg.search.combinations())
    return {"tune": cells * settings.trials_per_cell, "replicate": cells * len(settings.seeds)}


__all__ = ["METRICS", "STAGE_CONFIGS", "CompareSettings", "check_replicates", "replicate_config", "stage_config",
           "total_trials", "tune_config", "tuned_config", "tuned_trial"]
