"""storage.study_lock: one holder at a time per study, across connections (as across processes and machines)."""

from __future__ import annotations

import threading
import time

from storage import open_storage, study_lock


def _order(url: str, held: str, taken: str, seconds: float = 0.5) -> list[str]:
    """What happens first while another connection (a thread with its own storage) holds study ``held``'s lock for
    ``seconds``: this one taking ``taken``'s lock (``acquired``), or the other letting go (``released``)."""
    log: list[str] = []
    holding = threading.Event()

    def hold() -> None:
        storage = open_storage(url, heartbeat_interval=None)
        with study_lock(storage, held):
            holding.set()
            time.sleep(seconds)
            log.append("released")
        storage.engine.dispose()

    other = threading.Thread(target=hold)
    other.start()
    assert holding.wait(30)
    storage = open_storage(url, heartbeat_interval=None)
    with study_lock(storage, taken):
        log.append("acquired")
    other.join()
    return log


def test_a_second_holder_of_a_studys_lock_waits_until_the_first_lets_go(storage_url):
    assert _order(storage_url, "grid8", "grid8") == ["released", "acquired"]


def test_on_postgresql_the_locks_of_two_studies_do_not_wait_for_each_other(postgres_url):
    # on SQLite one lock covers the file's studies: its writers take turns anyway
    assert _order(postgres_url, "grid8", "another", seconds=2) == ["acquired", "released"]


def test_the_lock_is_taken_again_after_it_is_let_go(storage_url):
    storage = open_storage(storage_url, heartbeat_interval=None)
    for _ in range(2):
        with study_lock(storage, "grid8"):
            pass
