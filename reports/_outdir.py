"""The report's folder: which of its files the report may replace, and the list that says so.

A report folder holds a list of the files reports wrote there (:data:`MANIFEST`). Writing a
report again replaces those files; a file of the same name that a report did not write (the
user's own ``summary.csv``, a ``figures/`` folder of theirs) is never replaced without
``--force``: the report is refused, with one line, before anything is written. Files of
other names are left alone. Every path a report writes is a relative path built by the
report (names from the database go through ``objectives.path_part``), and is checked to stay
inside the folder.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from objectives import ConfigError
from storage import write_atomic

#: the list of the files reports wrote into a folder (JSON: ``{"files": [...]}``)
MANIFEST = ".snn-study-report.json"


def inside(out: Path, relative: str) -> Path:
    """``out / relative``, refused (ValueError: a bug, not bad input) unless it stays inside ``out``."""
    parts = PurePosixPath(relative).parts
    if not parts or PurePosixPath(relative).is_absolute() or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"report file {relative!r} would leave the report folder {out}")
    return out.joinpath(*parts)


def reported_files(out: Path) -> set[str]:
    """The files earlier reports wrote into ``out`` (none when it holds no readable list)."""
    try:
        files = json.loads((out / MANIFEST).read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError, AttributeError):
        return set()
    return {f for f in files if isinstance(f, str)}


def check_collisions(out: Path, planned: Iterable[str], force: bool) -> None:
    """Refuse (ConfigError on ``--out``) to write a report over a file in ``out`` that no report wrote."""
    if force or not out.is_dir():
        return
    ours = reported_files(out)
    theirs = sorted(f for f in planned if f not in ours and _exists(out, f))
    if theirs:
        more = f" and {len(theirs) - 1} more" if len(theirs) > 1 else ""
        raise ConfigError("--out", str(out), f"holds {theirs[0]}{more}, not written by a report; choose a new or "
                                             "empty folder, or pass --force to replace them")


def _exists(out: Path, relative: str) -> bool:
    path = inside(out, relative)
    # a folder or file where the report needs a folder (figures/ as a file) is a collision too
    return path.exists() or any(p.is_file() for p in path.parents if p != out and out in p.parents)


def write_manifest(out: Path, files: Iterable[str]) -> None:
    """Add ``files`` to ``out``'s list of report files. Written before the files themselves: a report killed
    half-way leaves files the next report may replace, not files it takes for the user's."""
    listed = sorted(reported_files(out) | set(files))
    write_atomic(out / MANIFEST, json.dumps({"files": listed}, indent=1) + "\n")
