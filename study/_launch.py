"""Where a study's workers run: the ``launcher`` section of a study config, and the rules a launched study obeys.

``local`` (the default) starts ``study.workers`` processes on this machine. ``slurm`` submits them as one Slurm
job array through submitit (:mod:`study._slurm`), one worker per array task, each running exactly what a local
worker runs. A launched study's workers run on machines that share nothing but the network, so before anything
is written or submitted it must name a database server (PostgreSQL) and an artifact folder that exists and can
be written (on a filesystem every node mounts).

There is no SQLite exception, not even for a one-node partition: the launcher cannot know which node a task
lands on nor whether the database file sits on a local disk, and SQLite's locks (and WAL's shared memory) are
not safe on a network filesystem. One machine's workers are what ``local`` runs, without Slurm.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from objectives import ConfigError

#: every launcher; ``local`` runs in this process (study._runner.run), the others through study._launchers
LAUNCHER_NAMES = ("local", "slurm")

#: sbatch options submitit sets itself for a job array (log files, the array, the time-limit signal)
_SUBMITIT_OWNS = ("array", "output", "error", "open-mode", "signal", "job-name", "wckey")
#: sbatch options that have a field of their own
_FIELD_OF = {"partition": "partition", "account": "account", "qos": "qos", "time": "timeout_min",
             "cpus-per-task": "cpus_per_worker", "gpus-per-node": "gpus_per_worker", "mem": "mem_gb",
             "nodes": "(one node per worker)", "ntasks-per-node": "(one task per worker)"}


@dataclass(frozen=True)
class LauncherConfig:
    """The ``launcher`` section: ``name`` and, for ``slurm``, what each array task (one worker) asks for."""

    name: str = "local"
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    #: each task's time limit (sbatch --time); a task past it is requeued by submitit (at most 3 times)
    #: and its worker resumes the study
    timeout_min: int = 240
    cpus_per_worker: int = 1
    #: 0 or 1: a worker trains one trial at a time on one device; more GPUs means more workers
    gpus_per_worker: int = 0
    mem_gb: float | None = None
    #: at most this many tasks at once (the ``%N`` of ``--array``); ``None``: all of them
    array_parallelism: int | None = None
    #: extra sbatch options, one per line as in a script: ``--constraint=a100`` or ``#SBATCH --mail-type=END``
    sbatch: tuple[str, ...] = ()
    #: shell lines run on the node before the worker starts (``module load ...``, ``source venv/bin/activate``)
    setup: tuple[str, ...] = ()
    #: job scripts and task logs, on a folder every node can write; relative to where ``run`` is started
    logs: str = "slurm-logs"
    #: the command that starts Python on a node; ``None``: this Python (a virtualenv on a shared filesystem)
    python: str | None = None

    @classmethod
    def from_value(cls, data: Any) -> LauncherConfig:
        """Build and check the ``launcher`` section (``None``: local)."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError("launcher", data, "expected a mapping of fields, e.g. {name: slurm, partition: gpu}")
        names = [f.name for f in dataclasses.fields(cls)]
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in names:
                raise ConfigError(f"launcher.{key}", value, f"unknown field; allowed: {', '.join(names)}")
            values[key] = _FIELDS[key](f"launcher.{key}", value)
        out = cls(**values)
        if out.name not in LAUNCHER_NAMES:
            raise ConfigError("launcher.name", out.name, f"allowed: {', '.join(LAUNCHER_NAMES)}")
        for key, low in (("timeout_min", 1), ("cpus_per_worker", 1), ("array_parallelism", 1)):
            if getattr(out, key) is not None and getattr(out, key) < low:
                raise ConfigError(f"launcher.{key}", getattr(out, key), f"must be >= {low}")
        if out.gpus_per_worker not in (0, 1):
            raise ConfigError("launcher.gpus_per_worker", out.gpus_per_worker,
                              "allowed: 0 or 1 (a worker trains on one device; for more GPUs launch more workers)")
        if out.mem_gb is not None and out.mem_gb <= 0:
            raise ConfigError("launcher.mem_gb", out.mem_gb, "must be > 0 (or null: the partition's default)")
        out.sbatch_options()  # each extra line is checked here, before anything is submitted
        return out

    def sbatch_options(self) -> dict[str, str | bool]:
        """The extra sbatch lines as submitit's ``additional_parameters`` (``--name=value`` -> ``{name: value}``)."""
        options: dict[str, str | bool] = {}
        for line in self.sbatch:
            text = line.strip()
            text = text[len("#SBATCH"):].strip() if text.startswith("#SBATCH") else text
            key, sep, value = text[2:].partition("=")
            if not text.startswith("--") or not key or " " in key:
                raise ConfigError("launcher.sbatch", line, "expected one sbatch option a line: --name=value or --flag")
            if key in _SUBMITIT_OWNS:
                raise ConfigError("launcher.sbatch", line, f"--{key} is set by the launcher itself")
            if key in _FIELD_OF:
                raise ConfigError("launcher.sbatch", line, f"use launcher.{_FIELD_OF[key]} instead of --{key}")
            options[key] = value if sep else True
        return options


def _one_line(path: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or "\n" in value:
        raise ConfigError(path, value, "expected a non-empty string on one line")
    return value


def _optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    return lambda path, value: None if value is None else check(path, value)


def _integer(path: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(path, value, "expected an integer")
    return value


def _number(path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(path, value, "expected a number")
    return float(value)


def _lines(path: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise ConfigError(path, value, "expected a list of lines")
    return tuple(_one_line(path, v) for v in value)


_FIELDS: dict[str, Callable[[str, Any], Any]] = {
    "name": _one_line,
    "partition": _optional(_one_line),
    "account": _optional(_one_line),
    "qos": _optional(_one_line),
    "timeout_min": _integer,
    "cpus_per_worker": _integer,
    "gpus_per_worker": _integer,
    "mem_gb": _optional(_number),
    "array_parallelism": _optional(_integer),
    "sbatch": _lines,
    "setup": _lines,
    "logs": _one_line,
    "python": _optional(_one_line),
}


# ---- the rules of a launched study, checked before anything is written -----------------------------------------


def check_server_storage(url: str) -> None:
    """A launched study's storage must be a database server: SQLite is refused (one line, ``study.storage``)."""
    import sqlalchemy

    try:
        backend = sqlalchemy.engine.make_url(url).get_backend_name()
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return  # not a URL at all: opening the storage says so, in its own words
    if backend == "sqlite":
        raise ConfigError("study.storage", url, "a launched study needs a database server every node reaches "
                          "(postgresql://USER@HOST/DB): SQLite on a network filesystem corrupts under concurrent "
                          "writers")


def check_shared_folder(field: str, path: str | None) -> Path:
    """``path`` exists, is a folder and can be written (tried, not guessed: root on NFS may not); it as absolute."""
    if path is None:
        raise ConfigError(field, None, "a launched study needs a folder every node can read and write "
                          "(on a shared filesystem), for the weights the dashboard, best and report read")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ConfigError(field, path, "no such folder; create it on a filesystem every node mounts")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ConfigError(field, path, f"cannot write in it ({exc.strerror}); give a folder this user can "
                          "write") from None
    return folder.resolve()


def absolute(cfg):
    """``cfg`` with ``study.artifacts`` as an absolute path: a task on another node may start in another folder."""
    if cfg.study.artifacts is None:
        return cfg
    artifacts = str(Path(cfg.study.artifacts).expanduser().resolve())
    return dataclasses.replace(cfg, study=dataclasses.replace(cfg.study, artifacts=artifacts))


def is_local_host(url: str) -> bool:
    """Whether a server URL names this machine by loopback or a local socket (other nodes would reach their own)."""
    import sqlalchemy

    return sqlalchemy.engine.make_url(url).host in (None, "", "localhost", "127.0.0.1", "::1")


__all__ = ["LAUNCHER_NAMES", "LauncherConfig", "absolute", "check_server_storage", "check_shared_folder",
           "is_local_host"]
