"""Workers that die, are stopped or paused, and parents that die: real processes, real signals, a real SQLite file.

Each test watches the study database from outside (Optuna's tables, read with sqlite3 in
WAL mode, which never blocks the workers) to send its signal at the moment that matters.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from optuna.trial import TrialState
from support import REPO, SNN_STUDY, array_yaml, assert_each_array_cell_exactly_once, cli, combos, env, load, study_yaml

#: heartbeats each second, a trial silent for 3 s is stale: a dead worker's trial is re-queued quickly
BEATS = {"heartbeat_interval": 1, "grace_period": 3}


def config(tmp_path: Path, epochs: int = 1, **study) -> Path:
    path = study_yaml(tmp_path, **BEATS, **study)
    data = yaml.safe_load(path.read_text())
    data["training"]["epochs"] = epochs
    path.write_text(yaml.safe_dump(data))
    return path


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([*SNN_STUDY, *args], cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def query(db: Path, sql: str) -> list[tuple]:
    """Rows of ``sql`` on the study database, or none while it is still being created."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute(sql).fetchall()
    except sqlite3.Error:
        return []


#: running trials that have not recorded a heartbeat yet (Optuna's tables)
SILENT = ("SELECT t.trial_id FROM trials t WHERE t.state = 'RUNNING' AND NOT EXISTS "
          "(SELECT 1 FROM trial_heartbeats h WHERE h.trial_id = t.trial_id)")
#: running trials that have reported at least one epoch
TRAINING = ("SELECT DISTINCT t.trial_id FROM trials t JOIN trial_intermediate_values v ON v.trial_id = t.trial_id "
            "WHERE t.state = 'RUNNING'")


#: how many epochs each running trial has reported
REPORTED = ("SELECT t.trial_id, COUNT(v.trial_intermediate_value_id) FROM trials t "
            "LEFT JOIN trial_intermediate_values v ON v.trial_id = t.trial_id WHERE t.state = 'RUNNING' "
            "GROUP BY t.trial_id")


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 180, every: float = 0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        if proc.poll() is not None:
            raise AssertionError(f"the run ended first (exit {proc.returncode}): {proc.communicate()[1][-2000:]}")
        time.sleep(every)
    raise AssertionError("timed out")


def children(pid: int) -> list[int]:
    """The live (not zombie) processes whose parent is ``pid``."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry.name))
    return out


def unlocked(db: Path) -> bool:
    """Whether no process holds the study database's write lock (SQLite has one for the whole file)."""
    try:
        with sqlite3.connect(db, timeout=0, isolation_level=None) as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False


def frozen_mid_training(proc: subprocess.Popen, db: Path, epochs: int, running: int = 2) -> list[int]:
    """The 2 workers of ``proc``, stopped (SIGSTOP) while each is inside its training: ``running`` trials are
    running, each has reported some but not all of its ``epochs``, and neither worker holds the write lock.

    Seen from the database alone, a trial that has reported epochs may be ending (pruned, or past its last epoch)
    or its worker may be between trials, and a signal sent then finds no trial to fail; a worker stopped while it
    writes (a heartbeat, an epoch) would stop every other one with it. Frozen, what the database holds is where
    the workers are; until it is mid-training in both, they are let go and looked at again.
    """
    while True:
        wait_for(lambda: len(query(db, TRAINING)) >= 2, proc, every=0.05)
        workers = children(proc.pid)
        assert len(workers) == 2, workers
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        reported = [n for _, n in query(db, REPORTED)]
        if len(reported) == running and all(0 < n < epochs for n in reported) and unlocked(db):
            return workers
        for pid in workers:
            os.kill(pid, signal.SIGCONT)
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def kill_all(pids) -> None:
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_run_killed_between_taking_a_trial_and_its_first_heartbeat_is_resumed_to_the_end(tmp_path):
    """Defect 1: Optuna's stale check sees only trials with a heartbeat; one taken by a worker that died before its
    first beat was waited for by every later run, for ever."""
    cfg = config(tmp_path)
    db = tmp_path / "study.db"
    victim = None
    for _attempt in range(3):  # the window is milliseconds long; a run offers it at every one of its 8 trials
        proc = start("run", "--config", str(cfg), "--quiet")
        try:
            while proc.poll() is None:
                silent = query(db, SILENT)
                if not silent:
                    continue
                os.kill(proc.pid, signal.SIGSTOP)  # frozen: what the database holds now is what a death leaves
                if (silent[0][0],) in query(db, SILENT):
                    os.kill(proc.pid, signal.SIGKILL)
                    victim = silent[0][0]
                    break
                os.kill(proc.pid, signal.SIGCONT)  # its first heartbeat came first; try the next trial
        finally:
            if proc.poll() is None and victim is None:
                proc.kill()
            proc.wait()
        if victim is not None:
            break
        db.unlink(missing_ok=True)
    assert victim is not None, "never caught a trial between its start and its first heartbeat"
    assert query(db, f"SELECT state FROM trials WHERE trial_id = {victim}") == [("RUNNING",)]

    resumed = cli("run", "--config", str(cfg), "--quiet", timeout=240)  # before the fix: waits for the trial for ever
    assert resumed.returncode == 0, resumed.stderr
    trials = load(db).trials
    counted = combos(trials)
    assert len(counted) == 8 and set(counted.values()) == {1}, counted
    assert not [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_the_workers_of_a_run_die_with_it(tmp_path, sig):
    """Defect 6: SIGKILL or SIGTERM to the parent of `run --workers 2` left both workers training, unsupervised."""
    db = tmp_path / "study.db"
    proc = start("run", "--config", str(config(tmp_path, epochs=8)), "--workers", "2", "--quiet")
    workers = []
    try:
        wait_for(lambda: len(query(db, TRAINING)) >= 2, proc)  # both started: neither is still importing
        workers = children(proc.pid)
        assert len(workers) == 2, workers
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        deadline = time.time() + 15
        while time.time() < deadline and any(alive(w) for w in workers):
            time.sleep(0.2)
        left = [w for w in workers if alive(w)]
        assert not left, f"workers still running {15} s after {sig.name} to their parent: {left}"
    finally:
        kill_all([*workers, proc.pid])
        proc.wait()
    trials = load(db).trials
    assert not [t.number for t in trials if t.state == TrialState.RUNNING], err  # each worker failed its trial
    stopped = [t for t in trials if t.state == TrialState.FAIL]
    assert stopped and all(t.user_attrs.get("interrupted") is True for t in stopped), err
    if sig == signal.SIGTERM:
        assert proc.returncode == 143
        # besides the start line and the progress lines ([done/total] ...), one line: what happened, how to resume
        said = [line for line in err.splitlines() if line.strip() and not line.startswith(("study 'grid8'", "["))]
        assert len(said) == 1 and "stopped by SIGTERM" in said[0] and "run the same command again" in said[0], err
        assert "Traceback" not in err


def test_sigterm_stops_a_single_process_run_as_ctrl_c_does(tmp_path):
    """Defect 6: SIGTERM left the trial RUNNING with no message; now as Ctrl-C: failed as interrupted, exit 143."""
    cfg = config(tmp_path, epochs=8)
    db = tmp_path / "study.db"
    proc = start("run", "--config", str(cfg), "--quiet")
    try:
        wait_for(lambda: query(db, TRAINING), proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        kill_all([proc.pid])
        proc.wait()
    assert proc.returncode == 143, err
    assert "run the same command again to resume" in err and "Traceback" not in err
    trials = load(db).trials
    assert not [t.number for t in trials if t.state == TrialState.RUNNING], err
    stopped = [t for t in trials if t.state == TrialState.FAIL]
    assert len(stopped) == 1 and stopped[0].user_attrs.get("interrupted") is True


def test_sigterm_to_one_worker_fails_its_trial_as_interrupted_and_the_study_completes(tmp_path):
    """Defect 6: a worker given SIGTERM left its trial RUNNING (stale after the grace period) and made `run` exit 1."""
    cfg = config(tmp_path, epochs=8, pruner={"name": "none"})  # a trial being pruned as the signal comes has ended
    db = tmp_path / "study.db"
    proc = start("run", "--config", str(cfg), "--workers", "2", "--quiet")
    workers = []
    try:
        workers = frozen_mid_training(proc, db, epochs=8)
        os.kill(workers[0], signal.SIGTERM)
        for pid in workers:
            os.kill(pid, signal.SIGCONT)
        deadline = time.time() + 15
        while alive(workers[0]) and time.time() < deadline:
            time.sleep(0.2)
        assert not alive(workers[0]), "the worker did not stop within 15 s of SIGTERM"
        interrupted = [t for t in load(db).trials if t.user_attrs.get("interrupted") is True]
        assert len(interrupted) == 1 and interrupted[0].state == TrialState.FAIL  # at once, not after a grace period
        _, err = proc.communicate(timeout=300)
    finally:
        kill_all([*workers, proc.pid])
        proc.wait()
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    assert proc.returncode == 0, err  # the other worker re-ran the interrupted combination: the study is complete
    counted = combos(load(db).trials)
    assert len(counted) == 8 and set(counted.values()) == {1}, counted


def test_a_worker_paused_past_the_grace_period_drops_its_trial_and_the_run_exits_0(tmp_path):
    """Item 15: a worker stopped longer than study.grace_period finds its trial failed (as stale) and re-queued when it
    resumes; it used to end with an error and `run` exited 1 though the study completed."""
    cfg = config(tmp_path, epochs=6)
    db = tmp_path / "study.db"
    proc = start("run", "--config", str(cfg), "--workers", "2", "--quiet")
    workers = []
    try:
        workers = frozen_mid_training(proc, db, epochs=6)
        os.kill(workers[1], signal.SIGCONT)  # worker 1 goes on; worker 0 stays stopped, its trial mid-training
        # the other worker fails the paused worker's trial once it is silent for the grace period
        wait_for(lambda: query(db, "SELECT trial_id FROM trials WHERE state = 'FAIL'"), proc, timeout=120)
        os.kill(workers[0], signal.SIGCONT)
        _, err = proc.communicate(timeout=300)
    finally:
        for w in workers:
            if alive(w):
                os.kill(w, signal.SIGCONT)
        kill_all([*workers, proc.pid])
        proc.wait()
    assert proc.returncode == 0, err
    assert "failed as stale while this worker was stopped" in err and "Traceback" not in err
    trials = load(db).trials
    counted = combos(trials)
    assert len(counted) == 8 and set(counted.values()) == {1}, counted
    assert not [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def test_a_failed_worker_start_stops_the_workers_already_started(tmp_path, monkeypatch, capsys):
    """Defect 6: when starting the second worker failed, the first was left running. The first here is a real worker
    process; the operating system's refusal to start the second (EAGAIN, as when a process limit is reached) is the
    one thing simulated."""
    import subprocess as sp

    from storage import open_storage
    from study._config import StudyConfig
    from study._runner import _Bar, _run_processes, prepare

    cfg = StudyConfig.from_dict(yaml.safe_load(config(tmp_path, epochs=8, workers=2).read_text()))
    storage = open_storage(cfg.study.storage, heartbeat_interval=1, grace_period=3)
    prepare(cfg, storage)
    real = sp.Popen
    started: list[sp.Popen] = []

    def popen(*args, **kwargs):
        if started:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        started.append(real(*args, **kwargs))
        return started[0]

    monkeypatch.setattr(sp, "Popen", popen)
    try:
        code = _run_processes(cfg, storage, _Bar(cfg, storage, quiet=True))
    except OSError:
        code = None  # the old behaviour: the error escaped (and the started worker ran on)
    finally:
        monkeypatch.setattr(sp, "Popen", real)
    assert len(started) == 1
    first = started[0]
    try:
        assert first.poll() is not None, "the first worker is still running"
    finally:
        if first.poll() is None:
            first.kill()
        first.wait()
    assert code == 1
    err = capsys.readouterr().err
    assert "could not start worker 2" in err and "Resource temporarily unavailable" in err


def test_more_workers_than_the_machine_can_take_is_refused_in_one_line(tmp_path):
    """Defect 6: `--workers` had no upper bound. (The storage is unreachable so that the code before the fix, which
    did not refuse, fails on that instead of starting 10,000 processes.)"""
    proc = cli("run", "--config", str(config(tmp_path)), "--workers", "10000",
               "--storage", "postgresql://nobody@127.0.0.1:1/none")
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1 and "study.workers" in proc.stderr, proc.stderr
    assert f"at most {4 * (os.cpu_count() or 1)}" in proc.stderr


def test_a_worker_killed_during_a_fused_array_loses_nothing_and_a_rerun_completes_each_cell_once(tmp_path):
    """Issue 16: an array's members are failed and re-run as single trials are."""
    cfg = array_yaml(tmp_path, epochs=4, **BEATS)
    db = tmp_path / "study.db"
    proc = start("run", "--config", str(cfg), "--workers", "2", "--quiet", "--set", "study.array_size=2")
    workers = []
    try:
        workers = frozen_mid_training(proc, db, epochs=4, running=4)  # 2 arrays of 2
        os.kill(workers[0], signal.SIGKILL)  # as the OOM killer ends a worker
        os.kill(workers[1], signal.SIGCONT)
        _, err = proc.communicate(timeout=300)
    finally:
        kill_all([*workers, proc.pid])
        proc.wait()
    rerun = cli("run", "--config", str(cfg), "--quiet", "--set", "study.array_size=2", timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    trials = load(db).trials
    assert_each_array_cell_exactly_once(trials)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert failed and all("interrupted" not in t.user_attrs for t in failed), err  # failed as stale, and re-run
