"""storage.study_lock: one holder at a time per study, across connections (as across processes and machines)."""

from __future__ import annotations

import threading
import time

from storage import open_storage, study_lock


def _hold(url: str, name: str, held: threading.Event, log: list, seconds: float = 0.5) -> threading.Thread:
    """A thread with its own storage (its own connections) holding ``name``'s lock for ``seconds``."""

    def run() -> None:
        storage = open_storage(url, heartbeat_interval=None)
        with study_lock(storage, name):
            held.set()
            time.sleep(seconds)
            log.append(("released", time.monotonic()))
        storage.engine.dispose()

    thread = threading.Thread(target=run)
    thread.start()
    assert held.wait(30)
    return thread


def test_a_second_holder_of_a_studys_lock_waits_until_the_first_lets_go(storage_url):
    log: list = []
    other = _hold(storage_url, "grid8", threading.Event(), log)
    storage = open_storage(storage_url, heartbeat_interval=None)
    with study_lock(storage, "grid8"):
        log.append(("acquired", time.monotonic()))
    other.join()
    assert [what for what, _ in log] == ["released", "acquired"]


def test_on_postgresql_the_locks_of_two_studies_do_not_wait_for_each_other(postgres_url):
    # on SQLite one lock covers the file's studies: its writers take turns anyway
    log: list = []
    other = _hold(postgres_url, "grid8", threading.Event(), log, seconds=2)
    storage = open_storage(postgres_url, heartbeat_interval=None)
    with study_lock(storage, "another"):
        log.append(("acquired", time.monotonic()))
    other.join()
    assert [what for what, _ in log] == ["acquired", "released"]


def test_the_lock_is_taken_again_after_it_is_let_go(storage_url):
    storage = open_storage(storage_url, heartbeat_interval=None)
    for _ in range(2):
        with study_lock(storage, "grid8"):
            pass
