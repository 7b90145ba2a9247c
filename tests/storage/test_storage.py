"""The study storage: Optuna's tables, the per-epoch metrics table, artifacts and bad URLs.

Real SQLite files under tmp_path throughout; the worker tests run real subprocesses.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from support import REPO

import storage
from objectives import ConfigError, EpochMetrics
from storage import _engines

optuna.logging.set_verbosity(optuna.logging.WARNING)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def epoch(n: int, rates: tuple[float, ...] = (0.25, 0.125)) -> EpochMetrics:
    return EpochMetrics(
        epoch=n, train_loss=1.0 / n, train_acc=0.5 + n / 100, val_acc=0.4 + n / 100, spike_rates=rates,
        seconds=2.5, train_samples_per_s=800.0,
    )


def table_names(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def run_python(code: str) -> subprocess.Popen:
    """Start ``code`` in a fresh interpreter, as a separate worker process would run."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )


# --- SQLite: WAL, busy timeout, folders -------------------------------------------------


def test_default_url_is_a_sqlite_file_in_runs():
    assert storage.DEFAULT_URL == "sqlite:///runs/snn_study.db"


def test_sqlite_storage_is_created_with_its_folder_in_wal_mode_with_a_busy_timeout(tmp_path):
    path = tmp_path / "new" / "folder" / "study.db"
    opened = storage.open_storage(sqlite_url(path))

    assert path.is_file()
    # WAL is stored in the file, so any later connection (optuna-dashboard's too) sees it.
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with opened.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == _engines.SQLITE_BUSY_TIMEOUT_S * 1000
    with storage.EpochLog(sqlite_url(path))._engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == _engines.SQLITE_BUSY_TIMEOUT_S * 1000


def test_a_relative_sqlite_url_is_relative_to_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    optuna.create_study(storage=storage.open_storage("sqlite:///runs/rel.db"), study_name="s")
    assert "s" in {s["name"] for s in storage.list_studies(sqlite_url(tmp_path / "runs" / "rel.db"))}


def test_workers_get_heartbeats_and_retries_of_dead_trials(tmp_path):
    opened = storage.open_storage(sqlite_url(tmp_path / "s.db"), heartbeat_interval=7, grace_period=21, max_retry=3)
    assert opened.get_heartbeat_interval() == 7
    assert opened.grace_period == 21
    assert isinstance(opened.get_heartbeat_stale_trial_callback(), optuna.storages.RetryHeartbeatStaleTrialCallback)

    quiet = storage.open_storage(sqlite_url(tmp_path / "s.db"), heartbeat_interval=None)
    assert quiet.get_heartbeat_interval() is None
    assert quiet.get_heartbeat_stale_trial_callback() is None


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_trial_whose_worker_died_is_failed_and_rerun_with_the_same_params(tmp_path):
    url = sqlite_url(tmp_path / "s.db")
    dying = run_python(
        f"""
        import os, optuna, storage
        opened = storage.open_storage({url!r}, heartbeat_interval=1, grace_period=1)
        study = optuna.create_study(storage=opened, study_name="s")
        def objective(trial):
            trial.suggest_float("x", 0, 1)
            os._exit(3)  # the worker dies mid-trial: no exception, no tell
        study.optimize(objective, n_trials=1)
        """
    )
    assert dying.wait(timeout=60) == 3, dying.stderr.read()
    study = optuna.load_study(study_name="s", storage=storage.open_storage(url, heartbeat_interval=1, grace_period=1))
    died = study.trials[0]
    assert died.state == TrialState.RUNNING

    # The next worker to start a trial fails the stale one and runs its re-queued copy first.
    deadline = time.monotonic() + 15
    while study.trials[0].state == TrialState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.5)
        optuna.storages.fail_stale_trials(study)
    seen = []
    study.optimize(lambda trial: seen.append(trial.suggest_float("x", 0, 1)) or 1.0, n_trials=1)

    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert seen == [died.params["x"]]
    assert optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(study.trials[1]) == 0


def test_two_worker_processes_share_one_new_sqlite_file_without_lock_errors(tmp_path):
    url = sqlite_url(tmp_path / "shared.db")
    worker = f"""
        import optuna, storage
        from objectives import EpochMetrics
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(storage=storage.open_storage({url!r}), study_name="s", direction="maximize",
                                    load_if_exists=True)
        log = storage.EpochLog({url!r})
        def objective(trial):
            x = trial.suggest_float("x", 0, 1)
            for n in range(1, 4):
                log.record("s", trial.number, trial._trial_id, EpochMetrics(n, 1.0, x, x, (x, x / 2), 0.1, 10.0))
                trial.report(x, n)
            return x
        study.optimize(objective, n_trials=15)
        """
    workers = [run_python(worker) for _ in range(2)]
    for w in workers:
        _, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        assert "locked" not in err

    [summary] = storage.list_studies(url)
    assert summary["complete"] == summary["n_trials"] == 30
    rows = storage.EpochLog(url).read("s")
    assert len(rows) == 90
    assert sorted({r["trial_number"] for r in rows}) == list(range(30))


def test_a_write_waits_out_another_connections_lock(tmp_path):
    path = tmp_path / "s.db"
    log = storage.EpochLog(sqlite_url(path))
    log.record("s", 0, 1, epoch(1))
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # holds the write lock, as a busy worker would
    releaser = threading.Timer(1.0, holder.execute, ["COMMIT"])
    releaser.start()
    try:
        started = time.monotonic()
        log.record("s", 0, 1, epoch(2))
        assert time.monotonic() - started >= 0.9
    finally:
        releaser.join()
        holder.close()
    assert [r["epoch"] for r in log.read("s")] == [1, 2]


# --- EpochLog -------------------------------------------------------------------------


def test_epoch_log_round_trip_orders_by_trial_then_epoch(storage_url):
    url = storage_url
    log = storage.EpochLog(url)
    log.record("s", 1, 12, epoch(1, (0.5,)))
    log.record("s", 0, 11, epoch(2))
    log.record("other", 0, 20, epoch(1))
    log.record("s", 0, 11, epoch(1))
    log.close()

    rows = storage.EpochLog(url).read("s")

    assert [(r["trial_number"], r["trial_id"], r["epoch"]) for r in rows] == [(0, 11, 1), (0, 11, 2), (1, 12, 1)]
    first, sent = rows[0], epoch(1)
    assert first["spike_rates"] == [0.25, 0.125]
    assert rows[2]["spike_rates"] == [0.5]
    for name in ("train_loss", "train_acc", "val_acc", "seconds", "train_samples_per_s"):
        assert first[name] == getattr(sent, name)
    assert first["study_name"] == "s" and first["created_at"] is not None
    assert storage.EpochLog(url).read("no such study") == []


def test_epoch_log_keeps_to_its_own_table(tmp_path):
    path = tmp_path / "s.db"
    storage.EpochLog(sqlite_url(path)).record("s", 0, 1, epoch(1))
    assert table_names(path) == {"snn_epoch_metrics"}

    storage.open_storage(sqlite_url(path))  # Optuna's tables join it; ours is left as it was
    assert "studies" in table_names(path)
    assert len(storage.EpochLog(sqlite_url(path)).read("s")) == 1


def test_reading_epochs_creates_nothing(tmp_path):
    path = tmp_path / "s.db"
    storage.open_storage(sqlite_url(path))
    before = table_names(path)
    assert storage.EpochLog(sqlite_url(path), create=False).read("s") == []
    assert table_names(path) == before


def test_engines_are_shared_per_database_and_bounded_in_number(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = storage.EpochLog("sqlite:///a.db")
    assert storage.EpochLog("sqlite:///a.db")._engine is first._engine
    assert storage.EpochLog(sqlite_url(tmp_path / "a.db"))._engine is first._engine  # same file, other spelling

    for n in range(_engines.MAX_CACHED_ENGINES + 3):
        storage.EpochLog(f"sqlite:///many{n}.db").record("s", 0, 1, epoch(1))
    assert len(_engines._engines) <= _engines.MAX_CACHED_ENGINES
    first.record("s", 0, 1, epoch(1))  # an evicted engine still works for whoever holds it
    assert len(first.read("s")) == 1


# --- artifacts --------------------------------------------------------------------------


def test_artifacts_live_beside_a_sqlite_database(tmp_path):
    assert storage.artifact_dir(storage.DEFAULT_URL) == Path("runs/artifacts")
    url = sqlite_url(tmp_path / "db" / "s.db")
    assert storage.artifact_dir(url) == tmp_path / "db" / "artifacts"

    store = storage.artifact_store(url)
    assert (tmp_path / "db" / "artifacts").is_dir()
    study = optuna.create_study(storage=storage.open_storage(url))
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"weights")
    artifact_id = optuna.artifacts.upload_artifact(artifact_store=store, file_path=str(weights), study_or_trial=study)
    assert (tmp_path / "db" / "artifacts" / artifact_id).read_bytes() == b"weights"


def test_artifacts_of_a_server_database_go_to_root_or_the_environment_or_runs(tmp_path, monkeypatch):
    server = "postgresql://u:p@db.example:5432/study"
    monkeypatch.delenv("SNN_STUDY_ARTIFACTS", raising=False)
    assert storage.artifact_dir(server) == Path("runs/artifacts")
    monkeypatch.setenv("SNN_STUDY_ARTIFACTS", str(tmp_path / "env"))
    assert storage.artifact_dir(server) == tmp_path / "env"
    assert storage.artifact_dir(server, root=str(tmp_path / "given")) == tmp_path / "given"
    storage.artifact_store(server)
    assert (tmp_path / "env").is_dir()


# --- list_studies -------------------------------------------------------------------------


def test_list_studies_counts_trials_by_state(storage_url):
    url = storage_url
    opened = storage.open_storage(url, heartbeat_interval=None)  # heartbeats need optimize(); this test asks
    study = optuna.create_study(storage=opened, study_name="mixed", direction="maximize")
    for value in (0.5, 0.9):
        study.add_trial(optuna.create_trial(value=value))
    study.add_trial(optuna.create_trial(state=TrialState.PRUNED))
    study.add_trial(optuna.create_trial(state=TrialState.FAIL))
    study.enqueue_trial({"x": 0.5})
    study.ask()  # takes the queued trial: RUNNING
    study.enqueue_trial({"x": 0.7})  # WAITING
    optuna.create_study(storage=opened, study_name="empty", directions=["maximize", "minimize"])

    mixed, empty = storage.list_studies(url)

    assert mixed["name"] == "mixed" and mixed["directions"] == ["MAXIMIZE"]
    assert (mixed["complete"], mixed["pruned"], mixed["fail"], mixed["running"], mixed["waiting"]) == (2, 1, 1, 1, 1)
    assert mixed["n_trials"] == 6
    assert mixed["best_value"] == 0.9
    assert mixed["datetime_start"] is not None
    assert empty["name"] == "empty" and empty["directions"] == ["MAXIMIZE", "MINIMIZE"]
    assert empty["n_trials"] == 0 and empty["best_value"] is None


def test_list_studies_never_creates_a_database(tmp_path):
    missing = tmp_path / "missing" / "s.db"
    with pytest.raises(ConfigError, match="no study database at"):
        storage.list_studies(sqlite_url(missing))
    assert not missing.parent.exists()

    plain = tmp_path / "plain.db"
    sqlite3.connect(plain).execute("CREATE TABLE notes (x)").connection.close()
    with pytest.raises(ConfigError, match="no study database at"):
        storage.list_studies(sqlite_url(plain))
    assert table_names(plain) == {"notes"}


# --- bad URLs ---------------------------------------------------------------------------


def assert_storage_error(error: pytest.ExceptionInfo[ConfigError], *words: str) -> None:
    assert error.value.field == "study.storage"
    message = str(error.value)
    assert "\n" not in message
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("foo://somewhere/db", ["unknown database kind 'foo'", "sqlite:///", "postgresql://"]),
        ("mysqlx://u:secret@host/db", ["unknown database kind 'mysqlx'", "u:***@"]),
        ("runs/snn_study.db", ["not a database URL", "sqlite:///PATH.db"]),
        ("", ["not a database URL"]),
        ("postgresql://u:p@host:port/db", ["not a database URL"]),
    ],
)
def test_a_url_that_is_not_a_known_database_is_a_config_error(url, words):
    with pytest.raises(ConfigError) as error:
        storage.open_storage(url)
    assert_storage_error(error, *words)
    with pytest.raises(ConfigError):
        storage.EpochLog(url)


def test_a_file_that_is_not_sqlite_is_a_config_error(tmp_path):
    path = tmp_path / "garbage.db"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(ConfigError) as error:
        storage.open_storage(sqlite_url(path))
    assert_storage_error(error, str(path), "not an SQLite database")
    with pytest.raises(ConfigError):
        storage.EpochLog(sqlite_url(path))


def test_opening_a_database_again_keeps_the_locks_of_the_connections_this_process_has_on_it(tmp_path):
    """Closing any descriptor of a file drops every POSIX lock the process holds on it. A check of the URL that
    opened and closed the file itself let another process take the database from under this one's open
    connections (two stages of ``snn-study compare`` in one process corrupted the database)."""
    path = tmp_path / "study.db"
    storage.open_storage(sqlite_url(path), heartbeat_interval=None)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM studies").fetchall()  # a read transaction: a shared lock on the file

    def leave_wal_from_another_process() -> str:
        code = (f"import sqlite3; db = sqlite3.connect({str(path)!r}, timeout=0); "
                "print(db.execute('PRAGMA journal_mode=DELETE').fetchall())")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        return proc.stdout + proc.stderr

    assert "database is locked" in leave_wal_from_another_process()
    storage.open_storage(sqlite_url(path), heartbeat_interval=None, create=False)
    storage.EpochLog(sqlite_url(path), create=False)
    assert "database is locked" in leave_wal_from_another_process()
    reader.close()


def test_opening_a_missing_database_without_create_is_a_config_error(tmp_path):
    path = tmp_path / "nope" / "s.db"
    with pytest.raises(ConfigError) as error:
        storage.open_storage(sqlite_url(path), create=False)
    assert_storage_error(error, f"no study database at {path}")
    assert not path.parent.exists()


def test_postgresql_without_its_driver_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg2", None)  # what an environment without the extra has
    with pytest.raises(ConfigError) as error:
        storage.open_storage("postgresql://u:p@127.0.0.1:1/db")
    assert_storage_error(error, "pip install snn-study[postgres]")


@pytest.mark.skipif(importlib.util.find_spec("psycopg2") is None,
                    reason="psycopg2 missing: pip install snn-study[postgres]")
def test_an_unreachable_postgresql_server_is_a_quick_config_error():
    started = time.monotonic()
    with pytest.raises(ConfigError) as error:
        storage.open_storage("postgresql://u:secret@127.0.0.1:1/db")
    assert time.monotonic() - started < 5
    assert_storage_error(error, "cannot reach the database server", "u:***@127.0.0.1:1")
    assert "secret" not in str(error.value)


_POP = """
import sys, json, optuna, storage
optuna.logging.set_verbosity(optuna.logging.ERROR)
study = optuna.load_study(study_name="queue", storage=storage.open_storage(sys.argv[1], heartbeat_interval=None))
got = []
while True:
    trial = study.ask()
    fixed = "fixed_params" in trial.storage.get_trial_system_attrs(trial._trial_id)
    if fixed:
        got.append(trial.suggest_int("i", 0, 39))
    study.tell(trial, 0.0)
    if not fixed:
        break
print(json.dumps(got))
"""


def test_parallel_workers_never_pop_the_same_queued_trial(tmp_path):
    url = sqlite_url(tmp_path / "q.db")
    study = optuna.create_study(study_name="queue", storage=storage.open_storage(url, heartbeat_interval=None))
    for i in range(40):
        study.enqueue_trial({"i": i})
    procs = [subprocess.Popen([sys.executable, "-c", _POP, url], stdout=subprocess.PIPE, text=True) for _ in range(4)]
    popped = [i for p in procs for i in json.loads(p.communicate(timeout=120)[0])]
    assert sorted(popped) == list(range(40))


def test_an_atomic_write_leaves_the_file_whole_and_nothing_else(tmp_path):
    path = storage.write_atomic(tmp_path / "best.yaml", "model: {neuron: leaky}\n")
    assert path.read_text() == "model: {neuron: leaky}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["best.yaml"]
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask  # as an ordinary new file, not mkstemp's 0600
    storage.write_atomic(path, b"replaced")
    assert path.read_bytes() == b"replaced"


def test_several_atomic_writes_are_all_or_none(tmp_path):
    (tmp_path / "a.yaml").write_text("old a\n")
    with pytest.raises(FileNotFoundError):  # the second file cannot be written: the first keeps its old text
        storage.write_all_atomic({tmp_path / "a.yaml": "new a\n", tmp_path / "missing" / "b.yaml": "b\n"})
    assert [(p.name, p.read_text()) for p in tmp_path.iterdir()] == [("a.yaml", "old a\n")]
    storage.write_all_atomic({tmp_path / "a.yaml": "new a\n", tmp_path / "b.yaml": "b\n"})
    assert sorted((p.name, p.read_text()) for p in tmp_path.iterdir()) == [("a.yaml", "new a\n"), ("b.yaml", "b\n")]


def test_a_damaged_page_is_named_as_damage_when_the_database_is_opened(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=url)
    for _ in range(50):
        study.tell(study.ask(), 1.0)
    with sqlite3.connect(tmp_path / "study.db") as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'trials'").fetchone()[0]
    conn.close()
    _engines._checked.clear()
    with (tmp_path / "study.db").open("r+b") as f:
        f.seek((page - 1) * page_size)
        f.write(b"\xff" * page_size)
    for read_only in (False, True):
        with pytest.raises(ConfigError, match=r"study\.db is damaged \(SQLite: .*\); restore it from a backup"):
            storage.open_storage(url, create=False, read_only=read_only, heartbeat_interval=None)
