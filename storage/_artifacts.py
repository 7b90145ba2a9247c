"""Where trial artifacts (best weights, traces) live, so that optuna-dashboard can show them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna

from objectives import saved_artifacts

from . import _engines

ARTIFACTS_ENV = "SNN_STUDY_ARTIFACTS"
_DEFAULT_ROOT = Path("runs/artifacts")


def artifact_dir(url: str, root: str | None = None, study_attrs: Mapping[str, Any] | None = None) -> Path:
    """The artifact folder for the study storage at ``url`` (not created; see :func:`artifact_store`).

    ``root`` if given; else the folder the study's config named (``study.artifacts``, read from the
    study's user attributes ``study_attrs``); else, for an SQLite file, ``artifacts/`` beside it
    (``runs/artifacts`` for the default URL), so a study database and its artifacts move together;
    else ``$SNN_STUDY_ARTIFACTS``, else ``runs/artifacts``. Start optuna-dashboard with
    ``--artifact-dir`` on this folder.
    """
    if root is None and study_attrs is not None:
        root = saved_artifacts(study_attrs)
    if root is not None:
        return Path(root)
    database = _engines.sqlite_file(_engines.parse_url(url))
    if database is not None:
        return Path(database).expanduser().parent / "artifacts"
    return Path(os.environ.get(ARTIFACTS_ENV) or _DEFAULT_ROOT)


def artifact_store(url: str, root: str | None = None) -> optuna.artifacts.FileSystemArtifactStore:
    """An Optuna artifact store in :func:`artifact_dir` (``url``, ``root``), the folder created."""
    path = artifact_dir(url, root)
    path.mkdir(parents=True, exist_ok=True)
    return optuna.artifacts.FileSystemArtifactStore(path)
