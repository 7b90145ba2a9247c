"""`snn-study run --launcher slurm` on a real Slurm: a study's workers as one job array, and its faults.

Needs a Slurm cluster for tests ($SNN_STUDY_TEST_SLURM set; `.ci/slurm up` starts a one-node one and prints the
exports) and a PostgreSQL server (conftest's ``postgres_url``). Without them the tests are skipped with the reason,
except in CI, where a missing cluster is a failure. Every job a test submits is cancelled when it ends.

The config errors at the top need neither.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from optuna.trial import TrialState
from support import REPO, assert_each_combination_exactly_once, cli, study_yaml, trials_of

from study._launch import LAUNCHER_NAMES

SLURM_ENV = "SNN_STUDY_TEST_SLURM"
#: every launch prints it; the job id follows
SUBMITTED = re.compile(r"submitted Slurm job (\d+)")


def squeue(*args: str) -> list[str]:
    return subprocess.run(["squeue", "-h", *args], capture_output=True, text=True, check=True).stdout.split()


def wait_until(what: str, done, timeout: float = 120, every: float = 0.5):
    """Poll ``done()`` until it returns something true; that value."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = done()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def left_the_queue(job: str) -> bool:
    return not squeue("-j", job)


@pytest.fixture
def slurm():
    """A Slurm cluster for tests; the jobs a test submitted are cancelled afterwards."""
    if not os.environ.get(SLURM_ENV):
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide Slurm: .ci/run starts a one-node cluster (.ci/slurm up) and sets {SLURM_ENV}")
        pytest.skip(f"no Slurm cluster for tests: as root, `eval \"$(.ci/slurm up)\"` starts one and sets {SLURM_ENV}")
    if shutil.which("sbatch") is None:
        pytest.fail(f"{SLURM_ENV} is set but sbatch is not on PATH")
    before = set(squeue("-o", "%F"))
    yield
    left = set(squeue("-o", "%F")) - before
    if left:
        subprocess.run(["scancel", *sorted(left)], check=False)


def launched_yaml(tmp_path: Path, storage: str, workers: int, epochs: int = 1, train_subset: int = 400,
                  prune: bool = True, **launcher) -> Path:
    """The 8-cell grid of test_study_run on tiny synthetic data, launched on Slurm; a short heartbeat and grace.
    ``prune=False`` for the fault tests: every trial runs all its epochs, so a fault lands in the middle of one."""
    (tmp_path / "artifacts").mkdir(exist_ok=True)
    path = study_yaml(tmp_path, storage=storage, artifacts=str(tmp_path / "artifacts"), workers=workers,
                      heartbeat_interval=1, grace_period=3)
    config = yaml.safe_load(path.read_text())
    config["training"]["epochs"] = epochs
    config["dataset"]["train_subset"] = train_subset
    if not prune:
        config["study"]["pruner"] = {"name": "none"}
    config["launcher"] = {"name": "slurm", "timeout_min": 10, "logs": str(tmp_path / "logs"), **launcher}
    path.write_text(yaml.safe_dump(config))
    return path


def submitted(proc: subprocess.CompletedProcess) -> str:
    found = SUBMITTED.search(proc.stdout)
    assert found, f"no job submitted: {proc.stdout}{proc.stderr}"
    return found.group(1)


#: the fault tests' trials: long enough that a poll finds one well inside its epochs (a synthetic epoch takes
#: about 0.2 s, so a 3-epoch trial left too short a window: CI once polled past every one of them)
FAULT_EPOCHS = 8


def trial_in_progress(log: Path) -> list[int]:
    """``[number]`` of the trial a worker's log shows in the first half of its epochs, so that a signal sent now
    lands before it ends; ``[]`` while none is."""
    try:
        last = re.findall(r"\] trial (\d+) epoch (\d+)/|grid8 trial (\d+) ", log.read_text())[-1:]
    except OSError:
        return []
    return [int(last[0][0])] if last and last[0][1] and int(last[0][1]) <= FAULT_EPOCHS // 2 else []


# ---- the launcher section: checked with the rest of the config (no Slurm needed) ------------------------------------


@pytest.mark.parametrize("name", LAUNCHER_NAMES)
def test_every_launcher_name_is_a_valid_config(tmp_path, name):
    from study._config import StudyConfig

    config = yaml.safe_load(study_yaml(tmp_path).read_text())
    assert StudyConfig.from_dict({**config, "launcher": {"name": name}}).launcher.name == name


@pytest.mark.parametrize("setting, message", [
    ("launcher.name=pbs", "launcher.name: got 'pbs'; allowed: local, slurm"),
    ("launcher.gpus_per_worker=2", "launcher.gpus_per_worker: got 2; allowed: 0 or 1"),
    ("launcher.timeout_min=0", "launcher.timeout_min: got 0; must be >= 1"),
    ("launcher.mem_gb=-1", "launcher.mem_gb: got -1.0; must be > 0"),
    ("launcher.sbatch=[--array=0-3]", "--array is set by the launcher itself"),
    ("launcher.sbatch=[--partition=gpu]", "use launcher.partition instead of --partition"),
    ("launcher.sbatch=[mail-type END]", "expected one sbatch option a line"),
    ("launcher.partiton=gpu", "launcher.partiton: got 'gpu'; unknown field; allowed: name, partition"),
])
def test_a_bad_launcher_setting_is_a_config_error_naming_the_field(tmp_path, setting, message):
    from objectives import ConfigError, apply_overrides
    from study._cli import parse_set
    from study._config import StudyConfig

    config = apply_overrides(yaml.safe_load(study_yaml(tmp_path).read_text()), parse_set([setting]))
    with pytest.raises(ConfigError) as error:
        StudyConfig.from_dict(config)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_bad_launcher_setting_exits_2_with_one_line_and_writes_nothing(tmp_path):
    proc = cli("run", "--config", str(study_yaml(tmp_path)), "--launcher", "slurm",
               "--set", "launcher.gpus_per_worker=2")
    assert proc.returncode == 2 and proc.stderr.startswith("snn-study run: error: launcher.gpus_per_worker: got 2")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "study.db").exists() and not (REPO / "slurm-logs").exists()


# ---- on a real Slurm ---------------------------------------------------------------------------------------------


def test_a_grid_study_launched_as_a_three_task_array_runs_every_cell_exactly_once(tmp_path, slurm, postgres_url):
    proc = cli("run", "--config", str(launched_yaml(tmp_path, postgres_url, workers=3)), "--wait")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    job = submitted(proc)
    for told in (f"squeue -j {job}", f"scancel {job}", f"tail -f {tmp_path / 'logs'}/{job}_0_0_log.err",
                 "array tasks", f"{job}_0..{job}_2", "complete (8 of 8 trials)"):
        assert told in proc.stdout, proc.stdout
    trials = trials_of(postgres_url)
    assert_each_combination_exactly_once(trials)
    assert not [t.number for t in trials if t.state == TrialState.FAIL]
    # the weights went to the shared artifact folder, where dashboard, best and report look
    saved = {t.user_attrs["weights_artifact"] for t in trials if t.state == TrialState.COMPLETE}
    assert saved and all((tmp_path / "artifacts" / a).is_file() for a in saved)
    listed = cli("list", "--storage", postgres_url)
    assert f"grid8: Slurm job {job}, 3 task(s)" in listed.stdout and "3 finished" in listed.stdout, listed.stdout


def test_a_task_killed_and_a_task_cancelled_mid_trial_lose_nothing_and_a_second_launch_completes_the_study(
        tmp_path, slurm, postgres_url):
    config = launched_yaml(tmp_path, postgres_url, workers=2, epochs=FAULT_EPOCHS, train_subset=1600, prune=False)
    first = cli("run", "--config", str(config))
    assert first.returncode == 0, first.stderr
    job = submitted(first)
    logs = tmp_path / "logs"
    # task 0's process killed mid-trial, as the OOM killer, a dead node or a preemption past its grace time do
    killed, = wait_until("task 0 in the middle of a trial",
                         lambda: trial_in_progress(logs / f"{job}_0_0_log.err"), every=0.1)
    subprocess.run(["scancel", "--signal=KILL", f"{job}_0.0"], check=True)
    # task 1 cancelled mid-trial: its worker ends the trial in hand within KillWait (10 s in .ci/slurm; 30 by
    # default) and starts no new one
    cancelled, = wait_until("task 1 in the middle of a trial",
                            lambda: trial_in_progress(logs / f"{job}_1_0_log.err"), every=0.1)
    subprocess.run(["scancel", f"{job}_1"], check=True)
    wait_until("the first launch to end", lambda: left_the_queue(job))

    second = cli("run", "--config", str(config), "--wait")
    assert second.returncode == 0, second.stdout + second.stderr
    trials = trials_of(postgres_url)
    assert_each_combination_exactly_once(trials)
    cut = next(t for t in trials if t.number == killed)
    assert cut.state == TrialState.FAIL and "failure" not in cut.user_attrs  # failed by its silent heartbeat
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert [t.state for t in retried] == [TrialState.COMPLETE]
    assert next(t for t in trials if t.number == cancelled).state == TrialState.COMPLETE
    listed = cli("list", "--storage", postgres_url).stdout
    assert f"task {job}_0 lost: ended without finishing" in listed, listed
    assert f"task {job}_1 cancelled: SIGTERM (scancel or preemption): stopped after its trial" in listed, listed


def test_the_time_limit_signal_requeues_the_task_and_fails_its_trial_at_once(tmp_path, slurm, postgres_url):
    config = launched_yaml(tmp_path, postgres_url, workers=2, epochs=FAULT_EPOCHS, train_subset=1600, prune=False)
    job = submitted(cli("run", "--config", str(config)))
    log = tmp_path / "logs" / f"{job}_0_0_log.err"
    victim, = wait_until("task 0 in the middle of a trial", lambda: trial_in_progress(log), every=0.1)
    # what Slurm sends signal_delay_s before a task's time limit (#SBATCH --signal=USR2@...)
    subprocess.run(["scancel", "--signal=USR2", f"{job}_0"], check=True)
    failed = wait_until("the trial in hand to be failed", lambda: [
        t for t in trials_of(postgres_url) if t.number == victim and t.state == TrialState.FAIL], timeout=30)
    assert "failure" not in failed[0].user_attrs  # interrupted, not failed for a reason of its own: it is run again
    requeued = wait_until("the task to be requeued",
                          lambda: "requeued" in cli("list", "--storage", postgres_url).stdout, timeout=30)
    assert requeued
    assert "Caught signal SIGUSR2" in log.read_text() and f"{job}_0" in squeue("-j", job, "-o", "%i")
    wait_until("task 1 to finish the study", lambda: f"{job}_1" not in squeue("-j", job, "-o", "%i"), timeout=240)
    assert_each_combination_exactly_once(trials_of(postgres_url))


def test_wait_exits_non_zero_when_every_task_fails_and_list_shows_why(tmp_path, slurm, postgres_url):
    # a node where the project cannot be imported: this folder's `study` shadows it (and is the task's cwd)
    broken = tmp_path / "broken"
    (broken / "study").mkdir(parents=True)
    (broken / "study" / "__init__.py").write_text('raise ImportError("snn-study is not installed on this node")\n')
    config = launched_yaml(tmp_path, postgres_url, workers=2, setup=[f"cd {broken}", f"export PYTHONPATH={broken}"])
    proc = cli("run", "--config", str(config), "--wait")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    job = submitted(proc)
    assert f"every task of Slurm job {job} failed (0 of 8 trials done)" in proc.stderr, proc.stderr
    listed = cli("list", "--storage", postgres_url).stdout
    assert "2 failed" in listed, listed
    for task in (f"{job}_0", f"{job}_1"):
        log = tmp_path / "logs" / f"{task}_0_log.err"
        assert f"task {task} failed: ImportError: snn-study is not installed on this node (log {log})" in listed
        assert "ImportError: snn-study is not installed on this node" in log.read_text()


def _unwritable(tmp_path: Path) -> str:
    if os.geteuid() == 0:
        return "/sys"  # root writes through permission bits; sysfs refuses new files even to root
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return str(folder)


@pytest.mark.parametrize("case, field, message", [
    ("sqlite", "study.storage", "SQLite on a network filesystem corrupts under concurrent writers"),
    ("no artifacts", "study.artifacts", "a launched study needs a folder every node can read and write"),
    ("missing artifacts", "study.artifacts", "no such folder; create it on a filesystem every node mounts"),
    ("unwritable artifacts", "study.artifacts", "cannot write in it"),
])
def test_a_launch_without_a_server_database_or_a_writable_artifact_folder_is_refused_before_anything_is_submitted(
        tmp_path, slurm, postgres_url, case, field, message):
    storage = f"sqlite:///{tmp_path / 'study.db'}" if case == "sqlite" else postgres_url
    config = launched_yaml(tmp_path, storage, workers=2)
    data = yaml.safe_load(config.read_text())
    data["study"]["artifacts"] = {"no artifacts": None, "missing artifacts": str(tmp_path / "nowhere"),
                                  "unwritable artifacts": _unwritable(tmp_path)}.get(case, data["study"]["artifacts"])
    data["study"]["name"] = name = f"refused-{case.replace(' ', '-')}"
    config.write_text(yaml.safe_dump(data))
    proc = cli("run", "--config", str(config), "--wait")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith(f"snn-study run: error: {field}: got ") and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not proc.stdout
    assert not squeue("-n", f"snn-{name}")  # nothing submitted
    assert not (tmp_path / "logs").exists() and not (tmp_path / "study.db").exists()
    assert not (tmp_path / "nowhere").exists()
    if case != "sqlite":  # and nothing written to the database
        engine = sa.create_engine(sa.engine.make_url(postgres_url).set(drivername="postgresql+psycopg2"))
        try:
            assert sa.inspect(engine).get_table_names() == []
        finally:
            engine.dispose()


def test_a_job_sbatch_refuses_exits_2_with_sbatchs_reason_and_leaves_no_task_behind(tmp_path, slurm, postgres_url):
    config = launched_yaml(tmp_path, postgres_url, workers=2, partition="no-such-partition")
    proc = cli("run", "--config", str(config))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("snn-study run: sbatch refused the job: ") and "Invalid partition" in last, proc.stderr
    assert "submitted" not in proc.stdout and not squeue("-n", "snn-grid8")
    assert not list((tmp_path / "logs").glob("*.pkl"))  # the pickled tasks of the refused job are removed
