"""Optuna's own storage: opening it for workers (heartbeats, retries) and summarising its studies."""

from __future__ import annotations

import collections
import warnings
from typing import Any

import optuna
from optuna.trial import TrialState
from sqlalchemy import exc as sa_exc

from objectives import ConfigError, TrialRecord, belongs_to, foreign_study

from . import _engines
from ._epochs import TABLE_NAME as EPOCH_TABLE

#: the Optuna table every study database has; its absence means "not an Optuna database"
_OPTUNA_STUDIES_TABLE = "studies"
_COUNTED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING)


def open_storage(
    url: str,
    *,
    heartbeat_interval: int | None = 10,
    grace_period: int | None = 30,
    max_retry: int = 2,
    create: bool = True,
    read_only: bool = False,
) -> optuna.storages.RDBStorage:
    """Open the Optuna storage at ``url`` for one worker process.

    SQLite files (``sqlite:///relative/or/absolute.db``) get their folder created, WAL
    journaling and a long busy timeout, so several local workers and optuna-dashboard can
    share one file. Any other SQLAlchemy URL (e.g. ``postgresql://user:pw@host:5432/db``)
    is passed through with ``pool_pre_ping``: that is the choice for many machines.

    With ``heartbeat_interval`` set, a running trial records a heartbeat every that many
    seconds; one silent for ``grace_period`` seconds (its worker died) is failed by the next
    worker that starts a trial and re-queued with the same parameters, at most ``max_retry``
    times. ``heartbeat_interval=None`` turns this off (read-only tools need no heartbeat).

    ``create=False`` opens an existing study database only and creates nothing; ``read_only=True`` (which implies
    it) is for commands that only read: it takes no write lock, and an SQLite file this process cannot write
    (read-only media) is opened read-only, so that it can be read.
    Every way the URL can be wrong raises :class:`objectives.ConfigError` on ``study.storage``.
    """
    create = create and not read_only
    target = _engines.parse(url, create=create, read_only=read_only)
    tables = _engines.check_connection(target, create=create)
    if create:
        _check_can_create(target, tables)
    if not create and _OPTUNA_STUDIES_TABLE not in tables:
        where = target.path or target.shown
        why = f"no study database at {where}; run a study first or fix the URL"
        raise ConfigError(_engines.FIELD, target.shown, why)
    with warnings.catch_warnings():
        # Heartbeats and the retry callback are marked experimental; we rely on them on
        # purpose, and the warning would be printed by every worker on every start.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = None
        if heartbeat_interval is not None:
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)

        def make() -> optuna.storages.RDBStorage:
            opened = optuna.storages.RDBStorage(
                target.url.render_as_string(hide_password=False),
                engine_kwargs=_engines.engine_kwargs(target),
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                heartbeat_stale_trial_callback=retry,
                skip_table_creation=not create,
            )
            if target.is_sqlite and not read_only:
                # after Optuna's initialisation, whose migration tool nests two connections
                _engines.begin_immediate(opened.engine)
            return opened

        # Workers started together on a new database race through Optuna's initialisation,
        # which is not atomic: creating its tables (OperationalError "already exists", hence
        # the retries) and stamping its schema version (IntegrityError). The loser finds the
        # database initialised on its second try.
        try:
            return _engines.with_retries(make)
        except sa_exc.IntegrityError:
            return _engines.with_retries(make)


def check_writable(url: str) -> None:
    """Refuse a study database at ``url`` that this process cannot write (an SQLite file on read-only media,
    or read-only to it): for a command that writes into an existing study, before it writes anything else."""
    _engines.check_writable(_engines.parse(url, create=False))


def _check_can_create(target: _engines.Target, tables: list[str]) -> None:
    """Refuse, before anything is written, a server database whose tables this role may not create.

    PostgreSQL 15 and later let only the owner of a database create tables in its ``public``
    schema: Optuna would fail on its first ``CREATE TABLE`` with a traceback.
    """
    missing = [t for t in (_OPTUNA_STUDIES_TABLE, EPOCH_TABLE) if t not in tables]
    if not missing or target.is_sqlite or target.url.get_backend_name() != "postgresql":
        return
    with _engines.engine(target).connect() as conn:
        role, schema, allowed = conn.exec_driver_sql(
            "SELECT current_user, current_schema(), has_schema_privilege(current_schema(), 'CREATE')").one()
    if not allowed:
        why = (f"role {role!r} may not create tables in schema {schema!r}, and the study tables ({', '.join(missing)}) "
               f"are not there yet; GRANT CREATE ON SCHEMA {schema} TO {role} (as the database owner), or run the "
               "first study as a role that may")
        raise ConfigError(_engines.FIELD, target.shown, why)


def study_names(storage: optuna.storages.BaseStorage, name: str) -> list[str]:
    """``name`` itself and every per-combination study of it (``objectives.cell_study_name``), sorted;
    a ``--study`` usage error when there is none."""
    names = [s.study_name for s in storage.get_all_studies()]
    found = [n for n in names if belongs_to(n, name)]
    if not found:
        there = ", ".join(sorted(names)) or "none"
        raise ConfigError("--study", name, f"no such study in the storage; studies there: {there}")
    return sorted(found)


def load_ours(storage: optuna.storages.BaseStorage, name: str, shown: str | None = None) -> optuna.Study:
    """Study ``name`` of ``storage``, refused (a ``--study`` :class:`objectives.ConfigError` naming ``shown``, else
    ``name``) when it is another tool's (:func:`objectives.foreign_study`): its best would be its worst here."""
    study = optuna.load_study(study_name=name, storage=storage)
    problem = foreign_study([d.name for d in study.directions], study.user_attrs)
    if problem:
        raise ConfigError("--study", shown or name, problem)
    return study


def list_studies(url: str) -> list[dict[str, Any]]:
    """Summarise every study in the storage at ``url``, oldest first, without writing to it.

    Each entry has ``name``, ``directions`` (e.g. ``["MAXIMIZE"]``), ``n_trials``, the trial
    counts ``complete``, ``pruned``, ``fail``, ``running``, ``waiting`` and ``interrupted`` (failed trials
    stopped by Ctrl-C or a signal, which ``fail`` does not count), ``best_value``
    (``None`` without a complete trial, and for multi-objective studies, which have no single
    best) and ``datetime_start`` (``None`` before the first trial).
    """
    storage = open_storage(url, heartbeat_interval=None, read_only=True)
    try:
        summaries = optuna.get_all_study_summaries(storage, include_best_trial=True)
        rows = []
        for summary in summaries:
            study_id = storage.get_study_id_from_name(summary.study_name)
            trials = storage.get_all_trials(study_id, deepcopy=False)
            states = collections.Counter(t.state for t in trials)
            # a trial stopped by Ctrl-C or a signal is failed in Optuna's terms, but nothing went wrong with it
            interrupted = sum(t.state == TrialState.FAIL and TrialRecord.from_frozen_trial(summary.study_name, t)
                              .interrupted is True for t in trials)
            states[TrialState.FAIL] -= interrupted
            rows.append(
                {
                    "name": summary.study_name,
                    "directions": [d.name for d in summary.directions],
                    "n_trials": summary.n_trials,
                    **{state.name.lower(): states[state] for state in _COUNTED_STATES},
                    "interrupted": interrupted,
                    "best_value": summary.best_trial.value if summary.best_trial is not None else None,
                    "datetime_start": summary.datetime_start,
                }
            )
        return rows
    finally:
        storage.engine.dispose()


def open_existing(url: str) -> optuna.storages.RDBStorage | None:
    """The study database at ``url`` opened to read, creating and changing nothing (not even SQLite's journal
    mode); ``None`` where there is none yet (no SQLite file, a server database without Optuna's tables).
    A URL that cannot be opened raises :class:`objectives.ConfigError`, as :func:`open_storage` does."""
    target = _engines.parse(url, create=True)  # the SQLite file's folder, as a run would create it anyway
    if target.path is not None and not target.path.is_file():
        return None
    if _OPTUNA_STUDIES_TABLE not in _engines.check_connection(target, create=False):
        return None
    return open_storage(url, heartbeat_interval=None, create=False)
