"""A study's workers as one Slurm job array, submitted through submitit (``snn-study run --launcher slurm``).

Each array task is one worker running :func:`study._runner.work`, the loop a local worker runs (resume,
heartbeat, pruning, a grid cell claimed compare-and-set), so the tasks of one array, of several launches and
local workers can share one study. Each launch and what became of each task are kept as user attributes of the
study (the first one of a per-combination config): ``slurm_job:<job>`` when it is submitted, ``slurm_task:<job>_<i>``
by the task itself (running, finished, failed with its error, cancelled, requeued) or, for what only Slurm or the
task's log knows (killed, failed before our code ran), by the next launch or ``--wait``; ``snn-study list`` shows
them.

Faults, and who handles them:

- **a task cancelled or killed mid-trial** (``scancel <job>_<i>``, preemption without requeue, a dead node):
  on SIGTERM the worker starts no new trial, and Slurm kills it ``KillWait`` seconds later (30 by default);
  the trial it was running, unless it ended meanwhile, loses its heartbeat, and the next worker that starts a
  trial fails it and re-queues its parameters (``study.heartbeat_interval``, ``study.grace_period``). The
  remaining tasks, or a new launch, complete the study.
- **the time limit**: Slurm sends USR2 ``signal_delay_s`` before it; submitit asks :meth:`_Task.checkpoint` for
  the task to run again, requeues the array task (at most ``MAX_TIMEOUT_REQUEUES`` times past a time limit;
  always after a preemption) and exits. The trial in hand is failed at once, like a Ctrl-C, and run again by the
  study; the requeued task starts as a worker that resumes the study. The heartbeat covers a task that got no
  signal.
- **a node that cannot import the project** (or start Python): no code of ours runs there. submitit writes the
  traceback to the task's ``.err`` log and the task fails; the submitting side finds it: ``--wait`` records it in
  the study when the array ends, and ``snn-study list`` reads it from the task's log where the log folder is
  readable (both: the task's last error line and the log's path).
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import optuna

from objectives import ConfigError
from storage import EpochLog, open_storage

from ._config import StudyConfig
from ._launch import absolute, check_shared_folder, is_local_host
from ._runner import (
    _STORAGE_ERRORS,
    POLL_SECONDS,
    _Bar,
    _first_line,
    _one_line_thread_errors,
    _open,
    prepare,
    progress,
    work,
)

JOB_ATTR, TASK_ATTR = "slurm_job:", "slurm_task:"
#: requeues of one task past its time limit (submitit's ``max_num_timeout``); preemptions do not count
MAX_TIMEOUT_REQUEUES = 3
#: seconds before the time limit Slurm signals a task (at most; Slurm may signal up to a minute early)
SIGNAL_DELAY_S = 90
#: states in which a task is still Slurm's: pending, running, or on its way to either
_ACTIVE = ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD",
           "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED")


def launch(cfg: StudyConfig, quiet: bool = False, wait: bool = False) -> int:
    """Prepare the study, submit ``study.workers`` workers as one job array, say how to follow it; with ``wait``,
    follow the study until the array ends. Returns the exit code."""
    import submitit

    cfg = absolute(cfg)
    logs = _logs_folder(cfg.launcher.logs)
    if is_local_host(cfg.study.storage):
        print("snn-study run: warning: study.storage names this machine (localhost); tasks on other nodes will not "
              "reach it: give the server's host name", file=sys.stderr)
    storage = _open(cfg)
    prepare(cfg, storage)
    epoch_log = EpochLog(cfg.study.storage)
    epoch_log.ensure_table()  # here, once: tasks starting together would race to create it
    epoch_log.close()
    notes = _notes_study(cfg, storage)
    settle(notes)  # the earlier launches that have ended: what became of their tasks, before new ones start
    first = 1 + sum(len(r["tasks"]) for r in _launches(notes.user_attrs).values())
    executor = _executor(cfg, logs)
    task = _Task(json.dumps(cfg.to_dict()), first, quiet)
    pickles = set(logs.glob("*.pkl"))
    try:
        # submitit prints sbatch's complaint itself; it is said once, below, in one line
        with _outside_any_job(), contextlib.redirect_stderr(io.StringIO()):
            jobs = executor.map_array(task, range(cfg.study.workers))
    except (submitit.core.utils.UncompletedJobError, submitit.core.utils.FailedSubmissionError) as exc:
        for leftover in set(logs.glob("*.pkl")) - pickles:  # the tasks submitit wrote for the refused job
            leftover.unlink(missing_ok=True)
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = next((line for line in reversed(lines) if "error" in line.lower()), lines[-1] if lines else "")
        print(f"snn-study run: sbatch refused the job: {reason}", file=sys.stderr)
        return 2
    job_id = jobs[0].job_id.split("_")[0]
    tasks = [j.job_id for j in jobs]
    notes.set_user_attr(JOB_ATTR + job_id, {"study": cfg.study.name, "tasks": tasks, "logs": str(logs),
                                            "workers": [first, first + len(tasks) - 1], "submitted": _now()})
    _print_submitted(cfg, job_id, tasks, logs)
    if not wait:
        return 0
    return follow(cfg, storage, job_id, quiet)


@contextlib.contextmanager
def _outside_any_job():
    """Submit as from a login shell: launched from inside a Slurm job (salloc, a batch script), that job's SLURM_*
    variables would leak into the tasks (their node list, their GPUs). Unlike submitit's ``clean_env``, it keeps
    ``SLURM_CONF`` (which cluster) and the user's ``SBATCH_*`` defaults."""
    job = {k: v for k, v in os.environ.items() if k.startswith(("SLURM_", "SLURMD_", "SRUN_")) and k != "SLURM_CONF"}
    for k in job:
        del os.environ[k]
    try:
        yield
    finally:
        os.environ.update(job)


def _logs_folder(path: str) -> Path:
    folder = Path(path).expanduser().resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError("launcher.logs", path, f"cannot create it ({exc.strerror}); give a folder every node "
                          "can write") from None
    return check_shared_folder("launcher.logs", str(folder))


def _executor(cfg: StudyConfig, logs: Path):
    import submitit

    lc = cfg.launcher
    executor = submitit.SlurmExecutor(folder=logs, max_num_timeout=MAX_TIMEOUT_REQUEUES, python=lc.python)
    executor.update_parameters(
        job_name="snn-" + re.sub(r"[^\w.-]", "_", cfg.study.name),
        time=lc.timeout_min,
        # the signal must come inside the time limit, or the task would be requeued as soon as it starts
        signal_delay_s=min(SIGNAL_DELAY_S, lc.timeout_min * 60 // 2),
        cpus_per_task=lc.cpus_per_worker,
        gpus_per_node=lc.gpus_per_worker or None,
        mem=f"{int(lc.mem_gb * 1024)}MB" if lc.mem_gb else None,
        partition=lc.partition,
        account=lc.account,
        qos=lc.qos,
        array_parallelism=lc.array_parallelism or cfg.study.workers,
        # submitit's default wckey ("submitit") is refused where wckeys are enforced
        wckey=None,
        additional_parameters=lc.sbatch_options() or None,
        # torch sizes its thread pool by the node's cores, not by the task's share of them
        setup=[f"export OMP_NUM_THREADS={lc.cpus_per_worker}", *lc.setup],
    )
    return executor


def _print_submitted(cfg: StudyConfig, job_id: str, tasks: list[str], logs: Path) -> None:
    from sqlalchemy.engine import make_url

    shown = make_url(cfg.study.storage).render_as_string(hide_password=True)
    gpus = f", {cfg.launcher.gpus_per_worker} GPU each" if cfg.launcher.gpus_per_worker else ""
    if len(tasks) == 1:  # submitit submits a single task as a plain job
        what, log, cancel = "1 worker", f"{logs}/{job_id}_0_log.err", f"scancel {job_id}"
    else:
        what, log = f"{len(tasks)} workers as array tasks {tasks[0]}..{tasks[-1]}", f"{logs}/{job_id}_<i>_0_log.err"
        cancel = f"scancel {job_id}    (one task: scancel {tasks[-1]}; the other workers re-run its trial)"
    print(f"submitted Slurm job {job_id}: {what} of study {cfg.study.name!r}{gpus}\n"
          f"  logs:     {log} (and .out)\n"
          f"  follow:   squeue -j {job_id}    tail -f {logs}/{tasks[0]}_0_log.err\n"
          f"  progress: snn-study list --storage {shown}\n"
          f"  cancel:   {cancel}\n"
          f"  resume:   run the same command again: new workers join the study where it stands")


# ---- following a launch ------------------------------------------------------------------------------------------


def follow(cfg: StudyConfig, storage, job_id: str, quiet: bool = False) -> int:
    """Show the study's progress until Slurm job ``job_id`` has left the queue; 0 when the study is complete."""
    bar = _Bar(cfg, storage, quiet)
    try:
        while _in_queue(job_id) is not False:
            bar.update()
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        bar.close()
        print(f"\nsnn-study run: stopped following; Slurm job {job_id} goes on (squeue -j {job_id}, "
              f"scancel {job_id})", file=sys.stderr)
        return 130
    bar.update()
    bar.close()
    notes = _notes_study(cfg, storage)
    outcomes = settle(notes, ended=(job_id,))[job_id]
    for o in outcomes:
        if o.state != "finished":
            print(f"  task {o.task} {o.describe()}", file=sys.stderr)
    studies = cfg.studies()
    done = sum(progress(optuna.load_study(study_name=n, storage=storage)).done for n, _ in studies)
    total = sum(cfg.target(s) for _, s in studies)
    if done >= total:
        print(f"Slurm job {job_id} ended: study {cfg.study.name!r} complete ({done} of {total} trials)")
        return 0
    if all(o.state != "finished" for o in outcomes):
        print(f"snn-study run: every task of Slurm job {job_id} failed ({done} of {total} trials done); "
              "see their logs above", file=sys.stderr)
    else:
        print(f"snn-study run: Slurm job {job_id} ended with {done} of {total} trials done; "
              "run the same command again to resume", file=sys.stderr)
    return 1


def _in_queue(job_id: str) -> bool | None:
    """Whether any task of ``job_id`` is still Slurm's (squeue: it needs no accounting database, as sacct does);
    ``None`` where this cannot be told (no squeue here, or the controller briefly away)."""
    if shutil.which("squeue") is None:
        return None
    proc = subprocess.run(["squeue", "-h", "-j", job_id, "-t", "all", "-o", "%T"], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        # a job Slurm has forgotten (past MinJobAge) is over
        return False if "invalid job id" in proc.stderr.lower() else None
    return any(state in _ACTIVE for state in proc.stdout.split())


# ---- what each task did ------------------------------------------------------------------------------------------


#: the states a task ends in: finished, or not
_ENDED = ("finished", "failed", "cancelled", "lost")


@dataclass(frozen=True)
class TaskOutcome:
    """How one array task stands: ``finished``, ``failed``, ``cancelled`` (stopped between trials on SIGTERM),
    ``lost`` (ended without a word: killed mid-trial), ``running``, ``requeued`` or ``pending``; ``error`` says why
    it did not finish, ``log`` is its stderr."""

    task: str
    state: str
    error: str | None
    log: Path

    def describe(self) -> str:
        """``failed: <error> (log <path>)`` and the like, for one line."""
        why = f": {self.error}" if self.error else ""
        return f"{self.state}{why} (log {self.log})"


def outcomes(user_attrs: dict[str, Any], job_id: str, ended: bool) -> list[TaskOutcome]:
    """Each task of launch ``job_id`` from the study's user attributes, completed from its log folder: a task that
    ended (``ended``, or submitit wrote its result) without saying so itself never ran our code."""
    launch = user_attrs[JOB_ATTR + job_id]
    logs = Path(launch["logs"])
    out = []
    for task in launch["tasks"]:
        note = user_attrs.get(TASK_ATTR + task) or {}
        state, error = note.get("state", "pending"), note.get("error")
        log = logs / f"{task}_0_log.err"
        if state not in _ENDED and (ended or (logs / f"{task}_0_result.pkl").exists()):
            if state == "pending":
                state, error = "failed", _last_error(log) or "it left no log: could it start Python there?"
            else:
                state, error = "lost", "ended without finishing (cancelled, killed, or out of memory)"
        out.append(TaskOutcome(task, state, error, log))
    return out


def settle(study: optuna.Study, ended: Iterable[str] = ()) -> dict[str, list[TaskOutcome]]:
    """The outcome of every task of each launch of ``study`` that has left Slurm's queue (or is in ``ended``), by
    job id. What only Slurm or a task's log told (a task killed, or failed before our code ran) is recorded in the
    study, so that ``snn-study list`` shows it also where neither can be asked."""
    attrs = study.user_attrs
    settled = {}
    for job_id in _launches(attrs):
        told = outcomes(attrs, job_id, ended=False)
        if not (all(o.state in _ENDED for o in told) or job_id in ended or _in_queue(job_id) is False):
            continue
        settled[job_id] = outcomes(attrs, job_id, ended=True)
        for o in settled[job_id]:
            note = attrs.get(TASK_ATTR + o.task) or {}
            if note.get("state") != o.state:
                study.set_user_attr(TASK_ATTR + o.task, {**note, "state": o.state, "error": o.error, "at": _now()})
    return settled


def _last_error(log: Path) -> str | None:
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return None
    errors = [line for line in lines if re.match(r"[A-Za-z_][\w.]*(Error|Exception|Exit)\b", line)]
    mine = [line for line in lines if not line.startswith(("srun:", "slurmstepd:"))]
    found = errors or mine
    return found[-1] if found else None


def launch_lines(url: str) -> list[str]:
    """Lines for ``snn-study list``: each Slurm launch of the storage's studies, its tasks counted by state, and
    each task that ended without finishing, with its error and log."""
    storage = open_storage(url, heartbeat_interval=None, read_only=True)
    lines = []
    try:
        for study in storage.get_all_studies():
            for job_id, launch in _launches(study.user_attrs).items():
                found = outcomes(study.user_attrs, job_id, ended=_in_queue(job_id) is False)
                counts = collections.Counter(o.state for o in found)
                lines.append(f"{study.study_name}: Slurm job {job_id}, {len(found)} task(s), submitted "
                             f"{launch['submitted'][:16].replace('T', ' ')}: "
                             + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
                lines += [f"  task {o.task} {o.describe()}" for o in found if o.state in _ENDED[1:]]
    finally:
        storage.engine.dispose()
    return lines


def _launches(user_attrs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k[len(JOB_ATTR):]: v for k, v in sorted(user_attrs.items()) if k.startswith(JOB_ATTR)}


def _notes_study(cfg: StudyConfig, storage) -> optuna.Study:
    """The study that keeps the launch notes: the config's only one, or its first per-combination study."""
    return optuna.load_study(study_name=cfg.studies()[0][0], storage=storage)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---- on the node ---------------------------------------------------------------------------------------------------

#: set by submitit's time-limit (or preemption) handler through :meth:`_Task.checkpoint`, before it requeues
_REQUEUED = threading.Event()
#: set on SIGTERM; the worker then starts no new trial
_TERMINATED = threading.Event()


class _Terminated(Exception):
    """The task was told to end (SIGTERM) and its worker has stopped between trials."""


def _stop_if_terminated() -> None:
    if _TERMINATED.is_set():
        raise _Terminated


class _TaskNotes:
    """What one task did, written into the study's user attributes (``slurm_task:<job>_<i>``)."""

    def __init__(self, cfg: StudyConfig, task: str, note: dict[str, Any]):
        self.cfg, self.key, self.note = cfg, TASK_ATTR + task, note
        self.storage: optuna.storages.RDBStorage | None = None

    def write(self, state: str, error: str | None = None) -> None:
        """Record ``state`` (and why), then close the connection: a worker holds no idle one while it runs."""
        if self.storage is None:
            self.storage = open_storage(self.cfg.study.storage, heartbeat_interval=None)
        study = _notes_study(self.cfg, self.storage)
        study.set_user_attr(self.key, {**self.note, "state": state, "error": error, "at": _now()})
        self.storage.engine.dispose()


@dataclass(frozen=True)
class _Task:
    """One array task: a worker of the study (pickled by submitit, run on the node with the task's index)."""

    spec: str
    first_worker: int
    quiet: bool

    def __call__(self, index: int) -> None:
        import socket

        import submitit

        # our own per-trial lines say how each trial ended; Optuna would repeat them with tracebacks
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        cfg = StudyConfig.from_dict(json.loads(self.spec))
        worker = self.first_worker + index
        task = submitit.JobEnvironment().job_id
        threading.excepthook = _one_line_thread_errors(worker)
        # scancel (and a preemption that cancels) sends SIGTERM, then SIGKILL after KillWait: no new trial meanwhile
        signal.signal(signal.SIGTERM, lambda *_: _TERMINATED.set())
        notes = _TaskNotes(cfg, task, {"worker": worker, "node": socket.gethostname()})
        error: str | None
        try:
            notes.write("running")  # a database this node cannot reach fails the task here, with the reason
            work(cfg, worker, None, self.quiet, on_trial=_stop_if_terminated)
        except _Terminated:
            print(f"[worker {worker}] SIGTERM: stopped after its trial", file=sys.stderr, flush=True)
            state, error = "cancelled", "SIGTERM (scancel or preemption): stopped after its trial"
        except BaseException as exc:
            if _REQUEUED.is_set():
                state, error = "requeued", "time limit or preemption: submitit requeued the task"
            else:
                state, error = "failed", f"{type(exc).__name__}: {_first_line(exc)}"
            print(f"[worker {worker}] {state}: {error}", file=sys.stderr, flush=True)
            with contextlib.suppress(Exception):  # the error that ends the task is the one to report
                notes.write(state, error)
            raise
        else:
            state, error = "finished", None
        with contextlib.suppress(*_STORAGE_ERRORS):  # the trials are told; only the note would be lost
            notes.write(state, error)

    def checkpoint(self, index: int):
        """Called by submitit on the time-limit signal: run this task again (a new worker start that resumes)."""
        import submitit

        _REQUEUED.set()
        return submitit.helpers.DelayedSubmission(self, index)


__all__ = ["TaskOutcome", "follow", "launch", "launch_lines", "outcomes", "settle"]
