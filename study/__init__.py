"""The study runner: command line, study config, search spaces, samplers, pruners, workers, best-config export.

From Python, ``run_study("quick")`` runs a study config (a dict, a YAML file or a preset) as ``snn-study run``
does and returns its Optuna studies; ``storage.load_trial`` gives a trial's trained model back.
"""

from ._api import run_study, study_config
from ._cli import main, parse_set
from ._config import PRESETS, StudyConfig, load_preset
from ._pruners import PrunerConfig, make_pruner
from ._runner import run

__all__ = ["PRESETS", "PrunerConfig", "StudyConfig", "load_preset", "main", "make_pruner", "parse_set", "run",
           "run_study", "study_config"]
