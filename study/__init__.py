"""The study runner: command line, study config, search spaces, samplers, pruners, workers, best-config export."""

from ._cli import main, parse_set
from ._config import StudyConfig, load_preset
from ._pruners import PrunerConfig, make_pruner
from ._runner import run

__all__ = ["PrunerConfig", "StudyConfig", "load_preset", "main", "make_pruner", "parse_set", "run"]
