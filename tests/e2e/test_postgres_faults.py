"""A study on PostgreSQL survives many workers and a server restart in the middle of it.

Each test gets a fresh database on $SNN_STUDY_TEST_PG (conftest's ``postgres_url``; in
CI a missing server is a failure, not a skip). The restart test stops and starts that
server with ``pg_ctl``, so it also needs $SNN_STUDY_TEST_PGDATA and $SNN_STUDY_TEST_PGBIN
(.ci/run exports them; elsewhere it skips without them); the server is started again
with the options it was running with (``postmaster.opts``), and its database comes from
a fixture whose admin engine pools no connection across the restart.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from optuna.trial import TrialState
from support import REPO, SNN_STUDY, assert_each_combination_exactly_once, cli, combos, env, study_yaml, trials_of

#: how long the server stays down: past a retry or two, short of the workers' whole retry budget
DOWN_SECONDS = 3






def test_three_workers_finish_a_grid_study_with_each_combination_exactly_once(tmp_path, postgres_url):
    config = study_yaml(tmp_path, storage=postgres_url, artifacts=str(tmp_path / "artifacts"))
    proc = cli("run", "--config", str(config), "--workers", "3", "--quiet", timeout=600, env=env())
    assert proc.returncode == 0, proc.stderr
    trials = trials_of(postgres_url)
    assert_each_combination_exactly_once(trials)
    assert not [t.number for t in trials if t.state == TrialState.FAIL]
    assert "Traceback" not in proc.stderr


@pytest.fixture
def server(postgres_url):
    """``(stop, start)`` for the PostgreSQL server of $SNN_STUDY_TEST_PG; it is running again afterwards."""
    pgdata, pgbin = os.environ.get("SNN_STUDY_TEST_PGDATA"), os.environ.get("SNN_STUDY_TEST_PGBIN")
    if not (pgdata and pgbin):
        if os.environ.get("CI"):
            pytest.fail("CI must export SNN_STUDY_TEST_PGDATA and SNN_STUDY_TEST_PGBIN (.ci/run does)")
        pytest.skip("set SNN_STUDY_TEST_PGDATA and SNN_STUDY_TEST_PGBIN (the data folder and binaries of the "
                    "$SNN_STUDY_TEST_PG server) to stop and restart it")
    pg_ctl = str(Path(pgbin) / "pg_ctl")
    # `postgres "-D" "<dir>" "-k" "/tmp" "-p" "5433" ...`: everything but -D <dir> goes back through -o
    words = shlex.split(Path(pgdata, "postmaster.opts").read_text())[1:]
    options = [w for i, w in enumerate(words) if w != "-D" and (i == 0 or words[i - 1] != "-D")]

    def pg(*args: str, check: bool = True) -> int:
        command = shlex.join([pg_ctl, "-D", pgdata, *args])
        argv = ["su", "postgres", "-c", command] if os.geteuid() == 0 else ["sh", "-c", command]
        return subprocess.run(argv, check=check, capture_output=True, timeout=60).returncode

    def stop() -> None:
        pg("-m", "fast", "-w", "stop")

    def start() -> None:
        pg("-l", str(Path(pgdata, "log")), "-o", shlex.join(options), "-w", "start")

    yield stop, start
    if pg("status", check=False) != 0:
        start()  # never leave the server down for the tests after this one


def test_a_server_restart_mid_study_ends_clearly_or_is_ridden_out_and_the_rerun_completes(tmp_path, postgres_url,
                                                                                          server):
    url = postgres_url
    stop, start = server
    config = study_yaml(tmp_path, storage=url, artifacts=str(tmp_path / "artifacts"), heartbeat_interval=1,
                        grace_period=3)
    data = yaml.safe_load(config.read_text())
    data["training"]["epochs"] = 4  # trials long enough to be cut by the restart
    config.write_text(yaml.safe_dump(data))
    command = ["run", "--config", str(config), "--workers", "2", "--quiet"]
    parent = subprocess.Popen([*SNN_STUDY, *command], cwd=REPO, env=env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and parent.poll() is None:
            time.sleep(0.5)
            try:
                if any(t.state == TrialState.RUNNING and t.intermediate_values for t in trials_of(url)):
                    break
            except Exception:  # the study is still being created
                continue
        assert parent.poll() is None, "the study ended before the restart: " + parent.communicate()[1]
        stop()
        time.sleep(DOWN_SECONDS)
        start()
        _, err = parent.communicate(timeout=600)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    time.sleep(4)  # past grace_period: a trial left running by a worker that gave up is now stale
    rerun = cli(*command, timeout=600, env=env())
    trials = trials_of(url)

    problems = []
    # the run either rode the restart out, or ended with the resume hint: never a bare traceback
    if parent.returncode not in (0, 1):
        problems.append(f"the run during the restart exited {parent.returncode}")
    if parent.returncode == 1 and "run the same command again to resume" not in err:
        problems.append("the run during the restart exited 1 without the resume hint")
    if "Traceback" in err:
        problems.append(f"the run during the restart printed {err.count('Traceback')} tracebacks")
    # and the study is whole: the same command completes it, each combination exactly once
    if rerun.returncode != 0:
        problems.append(f"the re-run exited {rerun.returncode}: {rerun.stderr[-1500:]}")
    counted = combos(trials)
    if len(counted) != 8 or set(counted.values()) != {1}:
        problems.append(f"combinations finished after the re-run: {dict(counted)}")
    if [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]:
        problems.append("trials left running or waiting after the re-run")
    # a trial the restart cut short may have failed (and was re-run); none failed for a reason of its own
    reasons = [t.user_attrs["failure"] for t in trials if t.state == TrialState.FAIL and "failure" in t.user_attrs]
    if reasons:
        problems.append(f"trials failed for good: {reasons}")
    assert not problems, "\n".join(problems) + "\n---- stderr of the run during the restart (end) ----\n" + err[-4000:]
