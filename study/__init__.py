"""The study runner: command line, study config, search spaces, samplers, pruners, workers, best-config export."""

from ._best import GROUP_FIELDS
from ._cli import main
from ._runner import saved_artifacts

__all__ = ["GROUP_FIELDS", "main", "saved_artifacts"]
