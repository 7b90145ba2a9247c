"""One lock per study, across the processes and machines that share its storage.

Optuna's writes are each atomic, but a read followed by writes that depend on it is not: two
workers that both find a grid cell missing from the queue would both queue it, and the cell
would run twice. Such a step runs inside :func:`study_lock`. On PostgreSQL it is a session-level
advisory lock (released by the server if the process dies); on SQLite, whose writers all run on
one machine, an ``flock`` on a file beside the database (``<database>.lock``, one lock for all the
file's studies, whose writes take turns anyway): never on the database itself, whose POSIX locks a
process loses when it closes any descriptor of the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from collections.abc import Iterator

import optuna
import sqlalchemy


@contextlib.contextmanager
def study_lock(storage: optuna.storages.RDBStorage, study_name: str) -> Iterator[None]:
    """Hold the lock of study ``study_name`` in ``storage`` for the block; waits while another process holds it."""
    engine = storage.engine
    if engine.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(f"snn-study:{study_name}".encode()).digest()[:8], "big", signed=True)
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            conn.commit()
            try:
                yield
            finally:
                try:
                    conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    conn.commit()
                except sqlalchemy.exc.DBAPIError:
                    pass  # the connection is gone, and the server let the lock go with it
    elif engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        with open(f"{engine.url.database}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process ends
            yield
    else:
        yield  # one process only (an in-memory database), or a server this project does not lock
