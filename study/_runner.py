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
import functools
import json
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import optuna
import sqlalchemy.exc
from optuna.trial import TrialState

import objectives
from objectives import STUDY_CONFIG_ATTR, TrainingDiverged, TrialRecord
from storage import EpochLog, artifact_store, open_storage, study_lock, trial_id, trial_of

from . import _guard, _spawn
from ._config import StudyConfig
from ._objectives import check_study, directions, prunes, score
from ._pruners import make_pruner
from ._samplers import make_sampler
from ._space import SearchSpace
from ._stages import stage_config

POLL_SECONDS = 2.0
CLAIM_RETRY_SECONDS = 0.2


@dataclass(frozen=True)
class Progress:
    """Where one study stands."""

    done: int
    running: int
    waiting: int
    best: float | None


def _is_done(study: optuna.Study, t: optuna.trial.FrozenTrial) -> bool:
    return TrialRecord.from_frozen_trial(study.study_name, t).done


def progress(study: optuna.Study, space: SearchSpace | None = None) -> Progress:
    """Trials done (complete, pruned, or failed for good), running and waiting (those ``space`` can run, if
    given), and the best value."""
    trials = study.get_trials(deepcopy=False)
    done = sum(_is_done(study, t) for t in trials)
    # the first objective is the validation accuracy (``t.value`` raises in a study of several objectives)
    values = [t.values[0] for t in trials if t.state == TrialState.COMPLETE and t.values]
    return Progress(
        done=done,
        running=sum(t.state == TrialState.RUNNING for t in trials),
        waiting=sum(t.state == TrialState.WAITING and (space is None or _guard.claimable(space, _queued(t)))
                    for t in trials),
        best=max(values) if values else None,
    )


def _create_or_load(cfg: StudyConfig, name: str, space: SearchSpace, storage, worker: int = 0) -> optuna.Study:
    """Study ``name``, created or loaded, with worker ``worker``'s sampler (seeded anew when the study holds trials:
    :func:`make_sampler`)."""
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        pruner=make_pruner(cfg.study.pruner, space.base.training.epochs) if prunes(cfg.study.objectives)
        else optuna.pruners.NopPruner(),
        directions=directions(cfg.study.objectives),
        load_if_exists=True,
    )
    started = sum(t.state != TrialState.WAITING for t in study.get_trials(deepcopy=False))  # not a grid's queue
    study.sampler = make_sampler(cfg.study.sampler, cfg.study.seed, worker, resumed=started)
    return study


def _fail_stale_trials(study: optuna.Study, storage: optuna.storages.RDBStorage, grace_period: float) -> None:
    with warnings.catch_warnings():
        # experimental in Optuna since 2.9 and what heartbeats are for; the warning would repeat every trial
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    _guard.fail_silent_trials(study, storage, grace_period)  # those that died before their first heartbeat


def _open(cfg: StudyConfig):
    return open_storage(
        cfg.study.storage, heartbeat_interval=cfg.study.heartbeat_interval, grace_period=cfg.study.grace_period
    )


def preflight(cfg: StudyConfig, storage) -> None:
    """Refuse, before anything is written, a study that ``cfg`` must not join (another objective, another tool's,
    another config: :func:`_guard.check_joinable`) in ``storage`` (``None``: a database with no study yet) and an
    artifact folder that cannot be written."""
    if storage is not None:
        _guard.check_joinable(cfg, storage)
    _guard.check_artifacts(cfg)


def prepare(cfg: StudyConfig, storage) -> None:
    """Create every study of ``cfg`` (or load it) and queue the grid combinations it still lacks."""
    for name, space in cfg.studies():
        study = _create_or_load(cfg, name, space, storage)
        check_study(study, cfg.study.objectives)
        _guard.record(study, cfg, space)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # stable in use since Optuna 3.2
            study.set_metric_names(list(cfg.study.objectives))
        study.set_user_attr(STUDY_CONFIG_ATTR, _guard.stored_config(cfg))
        if cfg.queued:
            queue_missing(study, storage, space, cfg.queue(space))


def queue_missing(study: optuna.Study, storage: optuna.storages.RDBStorage, space: SearchSpace,
                  wanted: list[dict[str, Any]] | None = None) -> int:
    """Enqueue each trial of ``wanted`` (default: every grid combination of ``space``) that no trial done, running
    or waiting stands for; returns how many. Under the study's lock (:func:`storage.study_lock`): two workers (or
    machines) topping up one queue at once would both queue a missing trial, and it would run twice.

    A trial stands for a wanted one when it holds each of the wanted parameters with its value (a combination's
    parameter names are those its trial draws them under: ``alpha.backprop`` where the neuron narrows the backprop
    methods); ``{}`` stands for any trial, so n of them top a study up to n trials. A trial stands for one at most.
    """
    with study_lock(storage, study.study_name):
        return _queue_missing(study, space, space.grid() if wanted is None else wanted)


def _queue_missing(study: optuna.Study, space: SearchSpace, wanted: list[dict[str, Any]]) -> int:
    covering = []
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.WAITING and not _guard.claimable(space, _queued(t)):
            continue  # another config's queued trial (see _claim_queued) covers none of ours
        if _is_done(study, t) or t.state in (TrialState.RUNNING, TrialState.WAITING):
            covering.append({k: repr(v) for k, v in _queued(t).items()})
    added = 0
    for params in wanted:
        match = next((i for i, held in enumerate(covering)
                      if all(held.get(k) == repr(v) for k, v in params.items())), None)
        if match is not None:
            covering.pop(match)
        else:
            study.enqueue_trial(params)
            added += 1
    return added


def _queued(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """A trial's parameters: those it ran with, else those it was queued with."""
    return t.params or t.system_attrs.get("fixed_params", {})


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
            if t.weights_missing:
                what += f"; weights not saved: {t.weights_missing}"
        elif t.state == "PRUNED":
            what = f"pruned at epoch {t.pruned_at if t.pruned_at is not None else '?'}"
        elif t.interrupted:
            what = "interrupted; it runs again when the study resumes"
        else:
            what = f"failed: {t.failure or 'error'}"
        combo = "/".join(t.combination.as_dict().values())
        print(f"{self.prefix}{t.study} trial {t.number} {combo}: {what} ({t.duration_s or 0:.0f}s)",
              file=sys.stderr, flush=True)

    def taken(self, study: optuna.Study, number: int) -> None:
        print(f"{self.prefix}{study.study_name} trial {number}: failed as stale while this worker was stopped "
              "longer than study.grace_period, and re-queued; this worker's result for it is dropped",
              file=sys.stderr, flush=True)


def work(cfg: StudyConfig, worker: int = 0, device: str | None = None, quiet: bool = False,
         on_trial: Callable[[], None] | None = None, fit: Callable | None = None) -> None:
    """One worker: run trials of every study of ``cfg`` until each has its target done.

    ``fit`` replaces the training of each trial (``objectives.Objective``'s ``fit``: a test's fake)."""
    storage = _open(cfg)
    epoch_log = EpochLog(cfg.study.storage)
    store = artifact_store(cfg.study.storage, cfg.study.artifacts)
    reporter = _Reporter(worker, quiet)
    try:
        for name, space in cfg.studies():
            study = _create_or_load(cfg, name, space, storage, worker)
            # objectives.Objective imports torch: here, in a worker, not when the command line starts
            on_epoch = _on_epoch(name, epoch_log, reporter)
            objective = objectives.Objective(space.suggest, store, device, on_epoch=on_epoch,
                                             score=score(cfg.study.objectives), fit=fit,
                                             hold=_spawn.holding_stop_signals)
            size = array_size(cfg, space, device)
            target = cfg.target(space)
            while True:
                _fail_stale_trials(study, storage, cfg.study.grace_period)
                p = progress(study, space)
                if p.done >= target:
                    break
                if p.waiting == 0 and p.running == 0 and cfg.queued:
                    queue_missing(study, storage, space, cfg.queue(space))  # trials that were interrupted
                    continue
                if p.waiting or (not cfg.queued and p.done + p.running < target):
                    # the claim takes only what is queued, and an ask only what lacking() counts under the lock
                    ran = run_trials(study, storage, objective, grid=cfg.queued, reporter=reporter, space=space,
                                     size=size, stage=cfg.stage,
                                     lacking=functools.partial(_lacking, study, space, target))
                    if ran and on_trial is not None:
                        on_trial()
                    elif not ran:
                        time.sleep(CLAIM_RETRY_SECONDS)  # another worker took the queued trial we counted
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


def array_size(cfg: StudyConfig, space: SearchSpace, device: str | None) -> int:
    """Trials a worker trains at once as one fused array: ``study.array_size``, else what
    :func:`objectives.default_array_size` says for the device it trains on (1 on a CPU)."""
    if cfg.study.array_size is not None:
        return cfg.study.array_size
    return objectives.default_array_size(objectives.resolve_device(device or space.base.training.device))


def _lacking(study: optuna.Study, space: SearchSpace, target: int) -> int:
    """How many more trials a study without a queue may start: its target less those done and running."""
    p = progress(study, space)
    return target - p.done - p.running


def run_trials(study: optuna.Study, storage: optuna.storages.RDBStorage,
               objective: Callable[[optuna.Trial], Any], grid: bool, reporter: _Reporter,
               space: SearchSpace | None = None, size: int = 1, stage: str | None = None,
               lacking: Callable[[], int] | None = None) -> bool:
    """Run up to ``size`` trials at once, queued ones first; returns False (and runs nothing) when a grid's queue
    is empty.

    One trial runs through ``objective``; several (``size`` > 1, an :class:`objectives.Objective`) through its
    ``run_array``, as fused arrays. Only queued trials whose queued parameters agree on everything an array's members
    share are claimed together; a study without a queue asks the sampler for ``size`` trials, at most ``lacking()``
    (counted under the study's lock, :func:`storage.study_lock`: two workers finishing at once both counted one
    trial missing and both asked, and the study ran one trial more than its target), and runs nothing (returns
    False) when none is lacking.

    Ask-and-tell rather than ``study.optimize``: on a grid, a worker that counted a
    queued trial can find another worker took it first, and ``optimize`` would then
    create a trial with no combination. Here a queued trial is claimed the way Optuna
    pops its queue (WAITING to RUNNING, compare-and-set in the database) and a grid
    worker that finds the queue empty just counts again. As in ``optimize``, each trial
    keeps a heartbeat while it runs, is failed on any exception or Ctrl-C (so it is
    never left RUNNING while the database is there) and the first error or Ctrl-C is raised again; Ctrl-C and
    SIGTERM outside the training wait until the trials are recorded. Only a queued
    trial that ``space`` (if given) can run is claimed. A trial failed as stale while this
    worker was stopped (it has been re-queued) is dropped with one line. ``stage`` (a comparison's) is recorded
    in each trial first.
    """
    with _spawn.holding_stop_signals():
        trials = _claim_queued(study, storage, space, size)
        if not trials:
            if grid:
                return False
            with study_lock(storage, study.study_name), warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Heartbeat of storage")  # ours is kept below, as optimize's would be
                trials = [study.ask() for _ in range(size if lacking is None else min(size, lacking()))]
            if not trials:
                return False
        with _heartbeat(storage, [trial_id(t) for t in trials]):
            try:
                if stage is not None:
                    for trial in trials:
                        _set_attrs(trial, stage=stage)
                with _spawn.letting_stop_signals_through():
                    outcomes = _train(objective, trials)
            except BaseException as exc:
                for trial in trials:
                    _fail_trial(study, trial, reporter, interrupted=isinstance(exc, KeyboardInterrupt))
                raise
            errors = [_tell(study, trial, outcome, reporter) for trial, outcome in zip(trials, outcomes)]
        error = next((e for e in errors if e is not None), None)
        if error is not None:
            raise error
        return True


def _train(objective: Callable[[optuna.Trial], Any], trials: list[optuna.Trial]) -> list[Any]:
    """Each trial's value, or the exception that ended it (KeyboardInterrupt ends them all)."""
    if len(trials) > 1:
        return cast(objectives.Objective, objective).run_array(trials)
    try:
        return [objective(trials[0])]
    except Exception as exc:  # noqa: BLE001 - told below, as an array member's own error is
        return [exc]


def _tell(study: optuna.Study, trial: optuna.Trial, outcome: Any, reporter: _Reporter) -> Exception | None:
    """Record a trial's outcome (its value, or the exception that ended it); the exception when it is an error that
    stops the worker (not a pruning, a divergence or another worker having taken the trial)."""
    if isinstance(outcome, optuna.exceptions.UpdateFinishedTrialError):
        reporter.taken(study, trial.number)
        return None
    if isinstance(outcome, Exception) and not isinstance(outcome, (optuna.TrialPruned, TrainingDiverged)):
        _fail_trial(study, trial, reporter, interrupted=False)
        return outcome
    if isinstance(outcome, optuna.TrialPruned):
        state, value = TrialState.PRUNED, None
    elif isinstance(outcome, TrainingDiverged):
        state, value = TrialState.FAIL, None  # the objective has set the reason; the study goes on
    else:
        state, value = TrialState.COMPLETE, outcome
    told = study.tell(trial, value, state=state, skip_if_finished=True)
    if told.state != state:
        reporter.taken(study, trial.number)
    else:
        reporter.trial(study, told)
    return None


def _fail_trial(study: optuna.Study, trial: optuna.Trial, reporter: _Reporter, interrupted: bool) -> None:
    """Fail ``trial``, whose objective raised; marked as interrupted (it runs again) for Ctrl-C and SIGTERM."""
    try:
        if interrupted:  # also where the objective had not started training yet
            _set_attrs(trial, interrupted=True)
        failed: optuna.trial.FrozenTrial | None = study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
    except (*_STORAGE_ERRORS, optuna.exceptions.UpdateFinishedTrialError):
        failed = None  # the database is away (the trial goes stale and another worker re-queues it), or
        # another worker already failed it as stale
    if interrupted and failed is not None and failed.state == TrialState.FAIL:
        reporter.trial(study, failed)


def _set_attrs(trial: optuna.Trial, **values: Any) -> None:
    """Set :class:`objectives.TrialRecord` fields of ``trial`` (as their user attributes)."""
    for name, value in TrialRecord.attrs(**values).items():
        trial.set_user_attr(name, value)


def _claim_queued(study: optuna.Study, storage: optuna.storages.RDBStorage, space: SearchSpace | None = None,
                  size: int = 1) -> list[optuna.Trial]:
    """Claim up to ``size`` queued trials (that ``space`` can run), each after the first only when its queued
    parameters agree with the first's on everything an array's members share."""
    claimed: list[optuna.Trial] = []
    shared: dict[str, Any] | None = None
    for queued in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        if len(claimed) == size:
            break
        params = _queued(queued)
        if space is not None and not _guard.claimable(space, params):
            continue  # another config's: left waiting for a worker that can run it
        key = _shared_params(space, params) if size > 1 else None
        if claimed and key != shared:
            continue  # another architecture: another array's
        try:
            ok = storage.set_trial_state_values(trial_id(queued), state=TrialState.RUNNING)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # finished by another worker since we read it
        if ok:
            claimed.append(trial_of(study, queued))
            shared = key
    return claimed


def _shared_params(space: SearchSpace | None, params: dict[str, Any]) -> dict[str, Any]:
    """The queued parameters the members of one array must agree on: all but those of
    :data:`objectives.MEMBER_FIELDS`."""
    member = {f"{section}.{name}" for section, names in objectives.MEMBER_FIELDS.items() for name in names}
    paths = {c.key: c.path for c in space.categorical} | {r.key: r.path for r in space.ranges} if space else {}
    return {key: value for key, value in params.items()
            if paths.get(key, key) not in member and not paths.get(key, key).startswith("surrogate_args.")}


@contextlib.contextmanager
def _heartbeat(storage: optuna.storages.RDBStorage, trial_ids: list[int]):
    """Record the trials' heartbeats every ``heartbeat_interval`` seconds while they run (if the storage has one).

    Unlike Optuna's heartbeat thread, a missed beat (the database briefly away) does not end it.
    """
    interval = storage.get_heartbeat_interval()
    if interval is None:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            for beating in trial_ids:
                try:
                    storage.record_heartbeat(beating)
                except _STORAGE_ERRORS:
                    pass  # a restarting server: beat again next time, or the trial would go stale while it runs
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_ids[0]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def run(cfg: StudyConfig, quiet: bool = False, debug: bool = False, fit: Callable | None = None) -> int:
    """``snn-study run``: prepare the studies, run the workers, print where things stand. Returns an exit code.

    ``fit`` replaces each trial's training, in this process only (one worker): the seam for tests."""
    storage = _open(cfg)
    preflight(cfg, storage)
    prepare(cfg, storage)
    epoch_log = EpochLog(cfg.study.storage)
    epoch_log.ensure_table()  # here, once: workers starting together would race to create it
    epoch_log.close()
    bar = _Bar(cfg, storage, quiet)
    if cfg.study.workers == 1:
        device = cfg.study.devices[0] if cfg.study.devices else None
        try:
            work(cfg, 0, device, quiet, on_trial=bar.update, fit=fit)
        except KeyboardInterrupt as exc:
            bar.close()
            return _interrupted(cfg, storage, exc)
        except _STORAGE_ERRORS as exc:
            bar.close()
            print(f"snn-study run: lost the study storage ({_first_line(exc)}); "
                  "run the same command again to resume", file=sys.stderr)
            return 1
        bar.close()
        return 0
    return _run_processes(cfg, storage, bar, debug)


def _run_processes(cfg: StudyConfig, storage, bar: _Bar, debug: bool = False) -> int:
    spec = json.dumps(cfg.to_dict())  # on the workers' stdin: a command line is readable by every local user
    commands = []
    for i in range(cfg.study.workers):
        args = [sys.executable, "-m", "study", "_worker", "--index", str(i + 1)]
        if cfg.stage is not None:
            args += ["--stage", cfg.stage]
        if debug:
            args.append("--debug")
        if cfg.study.devices:
            args += ["--device", cfg.study.devices[i % len(cfg.study.devices)]]
        if bar.quiet:
            args.append("--quiet")
        commands.append(args)
    procs = []
    try:
        try:
            procs = _spawn.start(commands, spec)
        except _spawn.StartFailed as exc:
            bar.close()
            print(f"snn-study run: could not start worker {exc.index} ({exc.reason}); the workers already started "
                  "were stopped. Run the same command again to resume", file=sys.stderr)
            return 1
        while any(p.poll() is None for p in procs):
            bar.update()
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt as exc:
        _spawn.stop(procs, signal.SIGINT)  # SIGINT, not SIGTERM: the workers stop without a line each
        bar.close()
        return _interrupted(cfg, storage, exc)
    _spawn.release(procs)
    bar.update()
    bar.close()
    failed = [p.returncode for p in procs if p.returncode != 0]
    if not failed:
        return 0
    if complete(cfg, storage):  # a worker's trouble (such as a trial taken from it) cost the study nothing
        print(f"snn-study run: {len(failed)} of {len(procs)} workers ended with exit {failed}; "
              "the study is complete", file=sys.stderr)
        return 0
    print(f"snn-study run: {len(failed)} of {len(procs)} workers failed (exit {failed}); "
          "run the same command again to resume", file=sys.stderr)
    return 1


def complete(cfg: StudyConfig, storage) -> bool:
    """Whether every study of ``cfg`` holds its target of done trials (False while the storage cannot say)."""
    try:
        return all(progress(optuna.load_study(study_name=n, storage=storage)).done >= cfg.target(s)
                   for n, s in cfg.studies())
    except _STORAGE_ERRORS:  # the workers said why (lost the study storage); the run ends with the resume hint
        return False


def _interrupted(cfg: StudyConfig, storage, interrupt: KeyboardInterrupt) -> int:
    studies = cfg.studies()
    done = sum(progress(optuna.load_study(study_name=n, storage=storage)).done for n, _ in studies)
    total = sum(cfg.target(s) for _, s in studies)
    how = "stopped by SIGTERM" if isinstance(interrupt, _spawn.Terminated) else "interrupted"
    print(f"\nsnn-study run: {how} with {done} of {total} trials done; "
          f"run the same command again to resume", file=sys.stderr)
    return _spawn.exit_code(interrupt)


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


def worker_main(parent: int, index: int, device: str | None, quiet: bool, debug: bool = False,
                stage: str | None = None) -> int:
    """Entry of a worker process started by :func:`run` (``snn-study _worker``), its study config on stdin;
    ``stage`` names the comparison stage the worker runs (``study._stages``).

    A lost database connection ends the worker with one line, not a traceback:
    its trial is failed by the heartbeat (or on resume) and re-run. SIGTERM (also sent
    when the parent dies) fails the running trial as interrupted and ends the worker
    with one line, exit 143.
    """
    spec = _spawn.receive_spec(parent)
    cfg = StudyConfig.from_dict(json.loads(spec))
    threading.excepthook = _one_line_thread_errors(index)
    try:
        if stage is not None:
            cfg = stage_config(cfg, stage, _open(cfg))
        work(cfg, index, device, quiet)
    except KeyboardInterrupt as exc:
        if isinstance(exc, _spawn.Terminated):
            print(f"[worker {index}] stopped by SIGTERM; its trial, if any, failed as interrupted and runs again "
                  "when the study resumes", file=sys.stderr, flush=True)
        return _spawn.exit_code(exc)
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


__all__ = ["Progress", "complete", "preflight", "prepare", "progress", "queue_missing", "run", "work", "worker_main"]
