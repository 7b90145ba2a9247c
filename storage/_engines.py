"""Storage URLs: checking them, one cached SQLAlchemy engine per URL, and opening errors as ConfigError.

Every way a ``study.storage`` URL can be wrong (not a URL, an unknown database, a missing
driver, a file that is not SQLite, a server that does not answer) ends here as one
:class:`objectives.ConfigError` line that says what to do.
"""

from __future__ import annotations

import collections
import os
import random
import shlex
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import sqlalchemy
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine, make_url

from objectives import ConfigError

from . import _secrets

FIELD = "study.storage"
DEFAULT_URL = "sqlite:///runs/snn_study.db"

#: seconds an SQLite connection waits for another writer before "database is locked"; long,
#: because a waiting worker loses nothing while a failed write loses a trial
SQLITE_BUSY_TIMEOUT_S = 60
#: seconds a PostgreSQL connection attempt may take: a wrong host fails the run quickly
PG_CONNECT_TIMEOUT_S = 10
#: attempts of one write before its error is raised; the waits between them double from
#: ``RETRY_FIRST_WAIT_S`` (about 7 s in all), enough to ride out a PostgreSQL restart
WRITE_ATTEMPTS = 5
RETRY_FIRST_WAIT_S = 0.5
#: engines kept per process; a worker touches one or two URLs, so more only happens in tests
MAX_CACHED_ENGINES = 8

_T = TypeVar("_T")

_URL_EXAMPLES = "use sqlite:///PATH.db or postgresql://USER:PASSWORD@HOST:PORT/DBNAME"


@dataclass(frozen=True)
class Target:
    """A checked storage URL: what to connect to and how to name it in messages."""

    url: URL
    #: the URL as given, password hidden, for error messages and logs
    shown: str
    #: the SQLite file (absolute); ``None`` for a server or an in-memory SQLite database
    path: Path | None

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"


def parse_url(url: str) -> URL:
    """Check that ``url`` is a URL of a database kind SQLAlchemy knows, without touching anything."""
    try:
        parsed = make_url(url)
    except (sa_exc.ArgumentError, ValueError, TypeError) as e:
        shown = _secrets.shown_url(url)
        raise ConfigError(FIELD, shown, f"not a database URL ({_one_line(e)}); {_URL_EXAMPLES}") from None
    try:
        parsed = _secrets.expand(parsed)
    except _secrets.MissingVariable as e:
        shown = _secrets.shown_url(url)
        raise ConfigError(FIELD, shown, f"names the environment variable {e.name}, which is not set") from None
    if parsed.drivername == "postgresql":
        # SQLAlchemy 2.0 reads a bare postgresql:// as psycopg2 and 2.1 as psycopg 3; pin the
        # driver that the [postgres] extra installs so both behave the same.
        parsed = parsed.set(drivername="postgresql+psycopg2")
    try:
        parsed.get_dialect()
    except sa_exc.NoSuchModuleError:
        shown = _secrets.shown_url(url)
        raise ConfigError(FIELD, shown, f"unknown database kind {parsed.drivername!r}; {_URL_EXAMPLES}") from None
    return parsed


def sqlite_file(url: URL) -> str | None:
    """The SQLite file named by ``url`` as written (maybe relative); ``None`` for a server or in-memory."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return url.database


def _in_memory(url: URL) -> bool:
    """Whether ``url`` names an SQLite database that lives in memory (``sqlite://``, ``:memory:``, ``mode=memory``)."""
    if url.get_backend_name() != "sqlite":
        return False
    database = url.database or ""
    return database in ("", ":memory:") or database.startswith("file::memory:") or url.query.get("mode") == "memory"


def parse(url: str, *, create: bool, read_only: bool = False) -> Target:
    """Check ``url`` without connecting; an SQLite file's folder is created when ``create``. With ``read_only``,
    an SQLite file this process cannot write (read-only media, permissions) is opened for reading only
    (:func:`read_only_url`); one it can write is opened as usual, since a read-only connection to a database in
    WAL mode leaves its ``-wal`` and ``-shm`` files behind (only the last writer removes them)."""
    parsed = parse_url(url)
    shown = _secrets.shown_url(url)  # as the user wrote it
    if _in_memory(parsed):
        why = "an in-memory database is gone when its process ends (and each worker would get its own); use a file"
        raise ConfigError(FIELD, shown, f"{why}: sqlite:///PATH.db")
    database = sqlite_file(parsed)
    if database is None:
        return Target(parsed, shown, None)

    # An absolute path keeps the engine cache and every later message correct if the
    # process changes folder, and lets a spawned worker reopen the same file.
    path = Path(database).expanduser().resolve()
    if not create and not path.is_file():
        raise ConfigError(FIELD, shown, f"no study database at {path}; run a study first or fix the path")
    if path.is_file() and path.stat().st_size > 0 and not _is_sqlite(path):
        raise ConfigError(
            FIELD,
            shown,
            f"{path} is not an SQLite database; point study.storage at a study database or a new file",
        )
    if create:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            why = f"cannot create the folder {path.parent} ({exc.strerror}); fix the path"
            raise ConfigError(FIELD, shown, why) from None
    if read_only and path.is_file() and _unwritable(path):
        return Target(read_only_url(parsed, path), shown, path)
    target = Target(parsed.set(database=str(path)), shown, path)
    if create:
        check_writable(target)
    return target


def check_writable(target: Target) -> None:
    """Refuse an SQLite file this process cannot write, before anything is written (a server is asked when
    it is written to)."""
    problem = _unwritable(target.path) if target.path is not None and target.path.is_file() else None
    if problem:
        raise ConfigError(FIELD, target.shown, f"{target.path} cannot be written: {problem}; the commands that only "
                                               "read a study (list, best, report --no-dashboard) can read it as it is")


def _unwritable(path: Path) -> str | None:
    """Why this process cannot write the SQLite file at ``path`` (SQLite also writes beside it), else ``None``."""
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "it is on a read-only file system"
    except OSError:
        pass
    if not os.access(path, os.W_OK):
        return "the file is read-only"
    if not os.access(path.parent, os.W_OK):
        return "its folder is read-only (SQLite writes its journal beside the file)"
    return None


def read_only_url(url: URL, path: Path) -> URL:
    """An SQLite URL that opens ``path`` for reading only (SQLite's ``mode=ro``): nothing in the file can change.

    On read-only media (or in a folder this process cannot write, with no ``-shm`` file beside the database, so
    no study is writing it) the file is also opened ``immutable``: SQLite then needs no ``-shm`` file, which a
    database in WAL mode otherwise needs even to be read, and cannot create there.
    """
    query = {"mode": "ro", "uri": "true"}
    try:
        media_read_only = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        media_read_only = False
    shm = path.with_name(path.name + "-shm")
    if media_read_only or (not os.access(path.parent, os.W_OK) and not shm.exists()):
        query["immutable"] = "1"
    return url.set(database="file:" + quote(str(path)), query=query)


def _is_sqlite(path: Path) -> bool:
    """Whether the file at ``path`` is an SQLite database, asked of SQLite itself.

    Not by reading its header: closing any descriptor of a file drops every POSIX lock the
    process holds on it, those of its open SQLite connections included (SQLite keeps its own
    descriptors open for that reason). Another process could then checkpoint and reset the
    WAL under them, and the database is corrupt (a process running two stages of
    ``snn-study compare`` did this).
    """
    try:
        conn = sqlite3.connect(path)
        try:
            conn.execute("PRAGMA schema_version")
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return True  # locked or unreadable: check_connection says which
    except sqlite3.DatabaseError:  # "file is not a database"
        return False
    return True


def engine_kwargs(target: Target) -> dict[str, Any]:
    """Keyword arguments for ``create_engine`` (also given to Optuna's own engine)."""
    if target.is_sqlite:
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    kwargs: dict[str, Any] = {"pool_pre_ping": True}  # a server may drop idle connections between trials
    if target.url.drivername == "postgresql+psycopg2" and "connect_timeout" not in target.url.query:
        kwargs["connect_args"] = {"connect_timeout": PG_CONNECT_TIMEOUT_S}
    return kwargs


def begin_immediate(engine: Engine) -> None:
    """Make every transaction on ``engine`` (SQLite) take the write lock when it starts.

    Optuna hands a queued trial to a worker by reading that it is WAITING and then
    writing RUNNING. pysqlite runs that read outside any transaction (it opens one
    only at the first write), so two workers could both read WAITING and both run the
    same trial. ``BEGIN IMMEDIATE`` makes read-then-write atomic across processes;
    the others wait in the busy timeout.
    """

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        dbapi = conn.connection.dbapi_connection
        if dbapi.isolation_level is not None:
            dbapi.isolation_level = None  # pysqlite must not open (or skip opening) transactions itself
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(target: Target) -> Engine:
    """A fresh engine for ``target``; a missing database driver becomes a ConfigError."""
    try:
        return sqlalchemy.create_engine(target.url, **engine_kwargs(target))
    except ImportError as e:
        if target.url.drivername == "postgresql+psycopg2":
            hint = "pip install snn-study[postgres]"
        else:
            hint = f"install the Python driver for {target.url.drivername}"
        raise ConfigError(FIELD, target.shown, f"the database driver is missing ({_one_line(e)}); {hint}") from None


_engines: collections.OrderedDict[str, Engine] = collections.OrderedDict()
_engines_lock = threading.Lock()


def engine(target: Target) -> Engine:
    """The process's engine for ``target``, made on first use; past the cap the least recently used goes."""
    key = target.url.render_as_string(hide_password=False)
    with _engines_lock:
        if key in _engines:
            _engines.move_to_end(key)
            return _engines[key]
        new = create_engine(target)
        _engines[key] = new
        while len(_engines) > MAX_CACHED_ENGINES:
            _, old = _engines.popitem(last=False)
            old.dispose()  # anyone still holding it just reconnects on next use
        return new


def _forget_pools_in_child() -> None:
    # A forked worker must not use the parent's pooled connections (shared sockets and
    # SQLite handles); close=False leaves them to the parent.
    for e in _engines.values():
        e.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools_in_child)


def check_connection(target: Target, *, create: bool) -> list[str]:
    """Connect once and return the table names; a database that cannot be opened becomes a ConfigError.

    When ``create``, an SQLite file is switched to WAL (the mode is stored in the file, so
    this is a no-op after the first time): readers such as optuna-dashboard then never
    block the workers' writes, nor they the readers.
    """

    def connect() -> list[str]:
        with engine(target).connect() as conn:
            if target.path is not None:
                damage = _sqlite_damage(conn, target.path)
                if damage:
                    raise ConfigError(FIELD, target.shown, damage)
            if create and target.path is not None:
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            return sqlalchemy.inspect(conn).get_table_names()

    try:
        # Only a lock is worth waiting for here: a server that refuses should fail the run at once.
        return with_retries(connect, retry_if=_sqlite_locked)
    except ConfigError:
        _drop(target)
        raise
    except sa_exc.DBAPIError as e:
        _drop(target)
        if target.path is not None and _is_damage(e.orig):
            raise ConfigError(FIELD, target.shown, _damaged(target.path, _one_line(e.orig))) from None
        if target.path is not None:
            where = f"cannot open {target.path}"
            hint = "check the path, its permissions and that nothing holds it locked"
        else:
            where = "cannot reach the database server"
            hint = "check host, port, user, password and that the server runs"
        raise ConfigError(FIELD, target.shown, f"{where} ({_one_line(e.orig)}); {hint}") from None


#: SQLite files found undamaged by this process (the check reads the whole file: once is enough)
_checked: set[Path] = set()


def _sqlite_damage(conn: sqlalchemy.Connection, path: Path) -> str | None:
    """Why the SQLite file at ``path`` is damaged (``PRAGMA quick_check``), else ``None``. A damaged page would
    otherwise surface later, in the middle of a study, as an error that names something else."""
    if path in _checked:
        return None
    rows = [str(r[0]) for r in conn.exec_driver_sql("PRAGMA quick_check").fetchall()]
    if rows == ["ok"]:
        _checked.add(path)
        return None
    return _damaged(path, " ".join(" ".join(rows).split()))


def _is_damage(error: BaseException | None) -> bool:
    text = str(error)
    return "malformed" in text or "not a database" in text


def _damaged(path: Path, detail: str) -> str:
    return (f"{path} is damaged (SQLite: {detail[:160]}); restore it from a backup, or save what is readable "
            f"with: sqlite3 {shlex.quote(str(path))} .recover | sqlite3 recovered.db")


def _passes(error: sa_exc.DBAPIError) -> bool:
    # What passes: SQLite still locked after its busy timeout (or a table that another
    # worker created between our check and our CREATE), a PostgreSQL connection dropped
    # (SQLAlchemy marks it invalidated) or a server restarting (OperationalError).
    # Anything else is a real error and raised at once.
    return isinstance(error, sa_exc.OperationalError) or error.connection_invalidated


def with_retries(write: Callable[[], _T], *, retry_if: Callable[[sa_exc.DBAPIError], bool] = _passes) -> _T:
    """Run ``write``; while it fails with an error that ``retry_if`` calls passing, again after a growing pause."""
    for attempt in range(WRITE_ATTEMPTS - 1):
        try:
            return write()
        except sa_exc.DBAPIError as e:
            if not retry_if(e):
                raise
            # jitter: workers that failed together should not retry together
            time.sleep(RETRY_FIRST_WAIT_S * 2**attempt * random.uniform(0.5, 1.5))
    return write()


def _sqlite_locked(error: sa_exc.DBAPIError) -> bool:
    # SQLite skips the busy timeout and answers "database is locked" at once where waiting
    # could deadlock (e.g. two connections switching a new file to WAL together).
    return "locked" in str(error.orig)


def _drop(target: Target) -> None:
    with _engines_lock:
        failed = _engines.pop(target.url.render_as_string(hide_password=False), None)
    if failed is not None:
        failed.dispose()


def _one_line(error: BaseException | None) -> str:
    # Driver messages span lines (libpq adds hints); ConfigError promises one line.
    return " ".join(str(error).split())
