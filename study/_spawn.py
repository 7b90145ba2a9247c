"""Worker processes: how ``run --workers N`` starts them, and how they stop.

- A worker's study config arrives on its stdin, never on its command line (which any
  local user can read, and which would show a database password).
- A worker dies with its parent: on Linux the kernel sends it SIGTERM when the parent
  dies (``PR_SET_PDEATHSIG``); everywhere, the parent holds the worker's stdin open and
  the worker stops when it reads end-of-file there, which happens however the parent ends.
- SIGTERM is handled like Ctrl-C (the running trial is failed as interrupted and re-queued
  when the study resumes), exit status 143; a process that has not stopped
  ``STOP_DEADLINE_S`` seconds after SIGTERM exits at once.
- If starting one worker fails, the ones already started are stopped.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time

EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143
#: seconds the parent waits for its workers to stop before it kills them
KILL_AFTER_S = 10.0
#: seconds a process may take to stop cleanly after SIGTERM (fail its trial, or wait for its workers to) before it
#: exits regardless
STOP_DEADLINE_S = 2 * KILL_AFTER_S
#: workers per CPU core one machine may run: more only thrash (and each holds a database connection)
WORKERS_PER_CPU = 4
_PR_SET_PDEATHSIG = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be: every handler of Ctrl-C stops the same way."""


def max_workers() -> int:
    """The most worker processes ``run`` starts on this machine."""
    return WORKERS_PER_CPU * (os.cpu_count() or 1)


def handle_stop_signals() -> None:
    """Ctrl-C (SIGINT) raises KeyboardInterrupt and SIGTERM :class:`Terminated`, which fail the running trial
    cleanly; inside :func:`holding_stop_signals` they wait for the block to end.

    A shell starts background commands with SIGINT ignored, and Python keeps an
    ignored SIGINT ignored: ``kill -INT`` would then do nothing to a study started with ``&``.
    """
    signal.signal(signal.SIGINT, _on_sigint)
    signal.signal(signal.SIGTERM, _on_sigterm)


_stopping = threading.Event()
#: inside holding_stop_signals (and not let through): a stop signal waits in _pending
_held = False
_pending: KeyboardInterrupt | None = None


def _on_sigint(signum, frame) -> None:
    if _held and _pending is not None:
        raise KeyboardInterrupt()  # Ctrl-C twice: the user does not want to wait for the database
    _interrupt(KeyboardInterrupt())


def _on_sigterm(signum, frame) -> None:
    if _stopping.is_set():
        return  # already stopping: a second signal must not interrupt the clean-up of the first
    _stopping.set()
    timer = threading.Timer(STOP_DEADLINE_S, os._exit, args=(EXIT_TERMINATED,))
    timer.daemon = True
    timer.start()
    _interrupt(Terminated())


def _interrupt(exc: KeyboardInterrupt) -> None:
    global _pending
    if not _held:
        raise exc
    _pending = _pending or exc


def _raise_pending() -> None:
    global _pending
    exc, _pending = _pending, None
    if exc is not None:
        raise exc


@contextlib.contextmanager
def holding_stop_signals():
    """Ctrl-C and SIGTERM wait until the block ends and are raised there (a second Ctrl-C still stops at once).

    For the steps between claiming a trial and the ``try`` that fails it when interrupted, and between its
    result and the database recording it: an interrupt landing there left the trial RUNNING."""
    global _held, _pending
    outer, _held = _held, True
    try:
        yield
    except KeyboardInterrupt:
        if not outer:
            _pending = None  # already stopping
        raise
    except BaseException:
        if not outer:
            _raise_pending()  # a stop signal outranks the error it arrived during
        raise
    finally:
        _held = outer
    if not outer:
        _raise_pending()


@contextlib.contextmanager
def letting_stop_signals_through():
    """Inside :func:`holding_stop_signals`: Ctrl-C and SIGTERM raise at once again (one that waited, on entry)."""
    global _held
    outer, _held = _held, False
    try:
        _raise_pending()
        yield
    finally:
        _held = outer


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """130 for Ctrl-C, 143 for SIGTERM."""
    return EXIT_TERMINATED if isinstance(interrupt, Terminated) else EXIT_INTERRUPTED


class StartFailed(Exception):
    """Worker ``index`` (from 1) could not be started; the ones started before it have been stopped."""

    def __init__(self, index: int, reason: str):
        self.index, self.reason = index, reason
        super().__init__(f"worker {index}: {reason}")


def start(commands: list[list[str]], spec: str) -> list[subprocess.Popen]:
    """Start one worker per command, each given ``spec`` (one line) on its stdin, which stays open while the
    worker runs. If one cannot be started (or is interrupted starting), stop the others and raise
    :class:`StartFailed` (or the interrupt)."""
    procs: list[subprocess.Popen] = []
    try:
        for index, argv in enumerate(commands, 1):
            try:
                proc = subprocess.Popen([*argv, "--parent", str(os.getpid())], stdin=subprocess.PIPE, text=True)
                procs.append(proc)
                assert proc.stdin is not None
                proc.stdin.write(spec + "\n")
                proc.stdin.flush()
            except OSError as exc:  # no process left, no memory, a worker that died before reading its spec
                raise StartFailed(index, exc.strerror or str(exc)) from exc
    except BaseException:
        stop(procs, signal.SIGTERM)
        raise
    return procs


def stop(procs: list[subprocess.Popen], sig: int) -> None:
    """Send ``sig`` to every worker still running, wait up to ``KILL_AFTER_S`` seconds, kill the rest, release
    their stdin."""
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(sig)
    deadline = time.monotonic() + KILL_AFTER_S
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    release(procs)


def release(procs: list[subprocess.Popen]) -> None:
    """Close the workers' stdin (they have ended)."""
    for p in procs:
        if p.stdin is not None:
            with contextlib.suppress(OSError):
                p.stdin.close()


def receive_spec(parent: int) -> str:
    """In a worker: arrange to stop when ``parent`` dies, then read the spec line the parent sent on stdin."""
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before the line above took effect
        os.kill(os.getpid(), signal.SIGTERM)
    spec = sys.stdin.readline()
    threading.Thread(target=_watch_parent, name="parent-watch", daemon=True).start()
    return spec


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return  # elsewhere the stdin watch alone stops the worker
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def _watch_parent() -> None:
    """Read stdin to its end, which comes when the parent's end of the pipe closes: the parent is gone."""
    with contextlib.suppress(OSError, ValueError):
        while sys.stdin.read(4096):
            pass
    os.kill(os.getpid(), signal.SIGTERM)
