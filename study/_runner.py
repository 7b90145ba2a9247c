"""Running a study: create or resume it, then N worker processes that share it through the storage.

Every worker runs the same loop (:func:`work`): fail stale trials (a worker that
died), count the trials that are done, and start one more while the study needs
it. "Done" is complete, pruned, or failed for a reason that would repeat
(diverged); trials failed by a dead worker are re-queued by Optuna's
``RetryFailedTrialCallback`` and trials interrupted by Ctrl-C are re-queued when
the study is resumed. For the grid sampler every combination is a queued trial,
so parallel workers can neither repeat nor skip one.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import optuna
import sqlalchemy.exc
from optuna.trial import TrialState

import objectives
from objectives import STUDY_CONFIG_ATTR, TrainingDiverged, TrialRecord
from storage import EpochLog, artifact_store, open_storage, trial_id, trial_of

from ._config import StudyConfig
from ._pruners import make_pruner
from ._samplers import make_sampler
from ._space import SearchSpace

POLL_SECONDS = 2.0
#: the direction and metric every study optimizes
DIRECTION, METRIC = optuna.study.StudyDirection.MAXIMIZE, "val_acc"


@dataclass(frozen=True)
class Progress:
    """Where one study stands."""

    done: int
    running: int
    waiting: int
    best: float | None


def _is_done(study: optuna.Study, t: optuna.trial.FrozenTrial) -> bool:
    return TrialRecord.from_frozen_trial(study.study_name, t).done


def progress(study: optuna.Study) -> Progress:
    """Trials done (complete, pruned, or failed for good), running and waiting, and the best value."""
    trials = study.get_trials(deepcopy=False)
    done = sum(_is_done(study, t) for t in trials)
    values = [t.value for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    return Progress(
        done=done,
        running=sum(t.state == TrialState.RUNNING for t in trials),
        waiting=sum(t.state == TrialState.WAITING for t in trials),
        best=max(values) if values else None,
    )


def _create_or_load(cfg: StudyConfig, name: str, space: SearchSpace, storage, worker: int = 0) -> optuna.Study:
    return optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=make_sampler(cfg.study.sampler, cfg.study.seed, worker),
        pruner=make_pruner(cfg.study.pruner, space.base.training.epochs),
        direction=DIRECTION,
        load_if_exists=True,
    )


def _fail_stale_trials(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        # experimental in Optuna since 2.9 and what heartbeats are for; the warning would repeat every trial
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _open(cfg: StudyConfig):
    return open_storage(
        cfg.study.storage, heartbeat_interval=cfg.study.heartbeat_interval, grace_period=cfg.study.grace_period
    )


def prepare(cfg: StudyConfig, storage) -> None:
    """Create every study of ``cfg`` (or load it) and queue the grid combinations it still lacks."""
    for name, space in cfg.studies():
        study = _create_or_load(cfg, name, space, storage)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # stable in use since Optuna 3.2
            study.set_metric_names([METRIC])
        study.set_user_attr(STUDY_CONFIG_ATTR, cfg.to_dict())
        if cfg.queued_grid:
            queue_missing(study, space)


def queue_missing(study: optuna.Study, space: SearchSpace) -> int:
    """Enqueue each grid combination that has no trial done, running or waiting; returns how many.

    A combination's parameter names are those its trial draws them under (``alpha.backprop`` where the
    neuron narrows the backprop methods), so a trial covers it when it holds each of them with its value."""
    covered = []
    for t in study.get_trials(deepcopy=False):
        if _is_done(study, t) or t.state in (TrialState.RUNNING, TrialState.WAITING):
            params = t.params or t.system_attrs.get("fixed_params", {})
            covered.append({k: repr(v) for k, v in params.items()})
    added = 0
    for params in space.grid():
        if not any(all(p.get(k) == repr(v) for k, v in params.items()) for p in covered):
            study.enqueue_trial(params)
            added += 1
    return added


class _Reporter:
    """Per-trial lines (and per-epoch lines unless quiet) on stderr, prefixed with the worker."""

    def __init__(self, worker: int, quiet: bool):
        self.prefix = f"[worker {worker}] " if worker else ""
        self.quiet = quiet

    def epoch(self, trial, cfg, m) -> None:
        if not self.quiet:
            print(
                f"{self.prefix}trial {trial.number} epoch {m.epoch}/{cfg.training.epochs}: "
                f"val {m.val_acc:.2%} loss {m.train_loss:.3f} {m.seconds:.1f}s",
                file=sys.stderr,
                flush=True,
            )

    def trial(self, study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        t = TrialRecord.from_frozen_trial(study.study_name, frozen)
        if t.state == "COMPLETE":
            test = t.test_acc if t.test_acc is not None else float("nan")
            what = f"val {t.value:.2%} test {test:.2%}"
        elif t.state == "PRUNED":
            what = f"pruned at epoch {t.pruned_at if t.pruned_at is not None else '?'}"
        else:
            what = f"failed: {t.failure or 'error'}"
        combo = "/".join(t.combination.as_dict().values())
        print(f"{self.prefix}{t.study} trial {t.number} {combo}: {what} ({t.duration_s or 0:.0f}s)",
              file=sys.stderr, flush=True)


def work(cfg: StudyConfig, worker: int = 0, device: str | None = None, quiet: bool = False,
         on_trial: Callable[[], None] | None = None) -> None:
    """One worker: run trials of every study of ``cfg`` until each has its target done."""
    storage = _open(cfg)
    epoch_log = EpochLog(cfg.study.storage)
    store = artifact_store(cfg.study.storage, cfg.study.artifacts)
    reporter = _Reporter(worker, quiet)
    try:
        for name, space in cfg.studies():
            study = _create_or_load(cfg, name, space, storage, worker)
            # objectives.Objective imports torch: here, in a worker, not when the command line starts
            on_epoch = _on_epoch(name, epoch_log, reporter)
            objective = objectives.Objective(space.suggest, store, device, on_epoch=on_epoch)
            target = cfg.target(space)
            while True:
                _fail_stale_trials(study)
                p = progress(study)
                if p.done >= target:
                    break
                if p.waiting == 0 and p.running == 0 and cfg.queued_grid:
                    queue_missing(study, space)  # combinations whose trial was interrupted
                    continue
                if p.waiting or (not cfg.queued_grid and p.done + p.running < target):
                    ran = run_one(study, storage, objective, grid=cfg.queued_grid, reporter=reporter)
                    if ran and on_trial is not None:
                        on_trial()
                else:
                    time.sleep(POLL_SECONDS)  # the rest is running elsewhere (or its worker died)
    finally:
        epoch_log.close()


def _on_epoch(study_name: str, epoch_log: EpochLog, reporter: _Reporter):
    """What a worker does after each epoch of a trial: record it in the per-epoch table, then print it."""

    def on_epoch(trial, cfg, metrics) -> None:
        epoch_log.record(study_name, trial.number, trial_id(trial), metrics)
        reporter.epoch(trial, cfg, metrics)

    return on_epoch


def run_one(study: optuna.Study, storage: optuna.storages.RDBStorage, objective: objectives.Objective, grid: bool,
            reporter: _Reporter) -> bool:
    """Run one trial, a queued one first; returns False (and runs nothing) when a grid's queue is empty.

    Ask-and-tell rather than ``study.optimize``: on a grid, a worker that counted a
    queued trial can find another worker took it first, and ``optimize`` would then
    create a trial with no combination. Here a queued trial is claimed the way Optuna
    pops its queue (WAITING to RUNNING, compare-and-set in the database) and a grid
    worker that finds the queue empty just counts again. As in ``optimize``, the trial
    keeps a heartbeat while it runs, is failed on any exception or Ctrl-C (so it is
    never left RUNNING while the database is there) and Ctrl-C is raised again.
    """
    trial = _claim_queued(study, storage)
    if trial is None:
        if grid:
            return False
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Heartbeat of storage")  # ours is kept below, as optimize's would be
            trial = study.ask()
    state, value = TrialState.COMPLETE, None
    with _heartbeat(storage, trial_id(trial)):
        try:
            value = objective(trial)
        except optuna.TrialPruned:
            state = TrialState.PRUNED
        except TrainingDiverged:
            state = TrialState.FAIL  # the objective has set the reason; the study goes on
        except BaseException:
            try:
                study.tell(trial, state=TrialState.FAIL)
            except _STORAGE_ERRORS:
                pass  # the database is away: the trial goes stale and another worker re-queues it
            raise
    reporter.trial(study, study.tell(trial, value, state=state))
    return True


def _claim_queued(study: optuna.Study, storage: optuna.storages.RDBStorage) -> optuna.Trial | None:
    for queued in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        try:
            claimed = storage.set_trial_state_values(trial_id(queued), state=TrialState.RUNNING)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # finished by another worker since we read it
        if claimed:
            return trial_of(study, queued)
    return None


@contextlib.contextmanager
def _heartbeat(storage: optuna.storages.RDBStorage, trial_id: int):
    """Record the trial's heartbeat every ``heartbeat_interval`` seconds while it runs (if the storage has one).

    Unlike Optuna's heartbeat thread, a missed beat (the database briefly away) does not end it.
    """
    interval = storage.get_heartbeat_interval()
    if interval is None:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                storage.record_heartbeat(trial_id)
            except _STORAGE_ERRORS:
                pass  # a restarting server: beat again next time, or the trial would go stale while it runs
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def run(cfg: StudyConfig, quiet: bool = False, debug: bool = False) -> int:
    """``snn-study run``: prepare the studies, run the workers, print where things stand. Returns an exit code."""
    storage = _open(cfg)
    prepare(cfg, storage)
    epoch_log = EpochLog(cfg.study.storage)
    epoch_log.ensure_table()  # here, once: workers starting together would race to create it
    epoch_log.close()
    bar = _Bar(cfg, storage, quiet)
    if cfg.study.workers == 1:
        device = cfg.study.devices[0] if cfg.study.devices else None
        try:
            work(cfg, 0, device, quiet, on_trial=bar.update)
        except KeyboardInterrupt:
            bar.close()
            return _interrupted(cfg, storage)
        except _STORAGE_ERRORS as exc:
            bar.close()
            print(f"snn-study run: lost the study storage ({_first_line(exc)}); "
                  "run the same command again to resume", file=sys.stderr)
            return 1
        bar.close()
        return 0
    return _run_processes(cfg, storage, bar, debug)


def _run_processes(cfg: StudyConfig, storage, bar: _Bar, debug: bool = False) -> int:
    spec = json.dumps(cfg.to_dict())
    procs = []
    for i in range(cfg.study.workers):
        args = [sys.executable, "-m", "study", "_worker", "--spec", spec, "--index", str(i + 1)]
        if debug:
            args.append("--debug")
        if cfg.study.devices:
            args += ["--device", cfg.study.devices[i % len(cfg.study.devices)]]
        if bar.quiet:
            args.append("--quiet")
        procs.append(subprocess.Popen(args))
    try:
        while any(p.poll() is None for p in procs):
            bar.update()
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        deadline = time.time() + 10
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
        bar.close()
        return _interrupted(cfg, storage)
    bar.update()
    bar.close()
    failed = [p.returncode for p in procs if p.returncode != 0]
    if failed:
        print(f"snn-study run: {len(failed)} of {len(procs)} workers failed (exit {failed}); "
              "run the same command again to resume", file=sys.stderr)
        return 1
    return 0


def _interrupted(cfg: StudyConfig, storage) -> int:
    studies = cfg.studies()
    done = sum(progress(optuna.load_study(study_name=n, storage=storage)).done for n, _ in studies)
    total = sum(cfg.target(s) for _, s in studies)
    print(f"\nsnn-study run: interrupted with {done} of {total} trials done; "
          f"run the same command again to resume", file=sys.stderr)
    return 130


class _Bar:
    """The study's progress: trials done of total and the best so far (a tqdm bar on a terminal, lines otherwise)."""

    def __init__(self, cfg: StudyConfig, storage, quiet: bool):
        self.storage, self.quiet = storage, quiet
        studies = cfg.studies()  # built once: it validates a config per combination
        self.names = [name for name, _ in studies]
        self.total = sum(cfg.target(s) for _, s in studies)
        self.last: tuple[int, float | None] | None = None
        self.tqdm = None
        if sys.stderr.isatty() and not quiet:
            from tqdm.auto import tqdm

            self.tqdm = tqdm(total=self.total, desc=cfg.study.name, unit="trial", file=sys.stderr)

    def update(self) -> None:
        try:
            ps = [progress(optuna.load_study(study_name=n, storage=self.storage)) for n in self.names]
        except _STORAGE_ERRORS:
            return  # the database is briefly unreachable: the workers say so; the bar waits
        done = sum(p.done for p in ps)
        bests = [p.best for p in ps if p.best is not None]
        best = max(bests) if bests else None
        if (done, best) == self.last:
            return
        self.last = (done, best)
        best_text = f"{best:.2%}" if best is not None else "-"
        if self.tqdm is not None:
            self.tqdm.n = done
            self.tqdm.set_postfix_str(f"best val {best_text}")
        else:
            print(f"[{done}/{self.total}] trials done, best val {best_text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tqdm is not None:
            self.tqdm.close()


def worker_main(spec: str, index: int, device: str | None, quiet: bool, debug: bool = False) -> int:
    """Entry of a worker process started by :func:`run` (``snn-study _worker``).

    A lost database connection ends the worker with one line, not a traceback:
    its trial is failed by the heartbeat (or on resume) and re-run.
    """
    cfg = StudyConfig.from_dict(json.loads(spec))
    threading.excepthook = _one_line_thread_errors(index)
    try:
        work(cfg, index, device, quiet)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the parent reports a failed worker and how to resume
        if debug:
            raise
        what = "lost the study storage" if isinstance(exc, _STORAGE_ERRORS) else f"failed ({type(exc).__name__})"
        print(f"[worker {index}] {what}: {_first_line(exc)}; stopping (--debug shows the traceback)",
              file=sys.stderr, flush=True)
        return 1
    return 0


_STORAGE_ERRORS = (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError)


def _first_line(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__ or exc
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]


def _one_line_thread_errors(index: int):
    """An uncaught error in one of the worker's threads (such as the heartbeat) in one line, not a traceback."""

    def hook(args: threading.ExceptHookArgs) -> None:
        what = _first_line(args.exc_value) if args.exc_value is not None else args.exc_type.__name__
        thread = args.thread.name if args.thread else "a thread"
        print(f"[worker {index}] {thread}: {what}", file=sys.stderr, flush=True)

    return hook


__all__ = ["Progress", "prepare", "progress", "queue_missing", "run", "work", "worker_main"]
