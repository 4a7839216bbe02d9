"""One exit deadline for everything otel-commerce does at exit, whichever exit path reaches us first.

The exit paths (``atexit``, the OTel SDK's atexit calling our processor's ``shutdown``, a signal, a web
server's shutdown, a ``multiprocessing`` finalizer) all call :func:`run_exit`. The first call fixes the
deadline (``OTEL_COMMERCE_EXIT_TIMEOUT_MS``, default 5000, from that moment) and runs the registered exit
work once; later calls wait for it (within the same deadline) instead of starting their own budget.

Also here: the ``multiprocessing`` finalizer (children leave through ``os._exit``), registered through the
engine's generic start hooks. The fork hold lives with the engine (``otel_commerce._delivery._process``).
The engine never imports this module: the exit work (``_state``) calls its ``shutdown`` with what is left.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable

from .._delivery import add_start_hook, set_exit_note

__all__ = [
    "DEFAULT_EXIT_TIMEOUT_SECONDS",
    "begin",
    "defer_signal",
    "exit_in_progress",
    "exit_timeout",
    "interpreter_exiting",
    "register_exit_work",
    "register_mp_finalizer",
    "remaining",
    "run_exit",
    "running_here",
    "set_exit_timeout",
]

logger = logging.getLogger("otel_commerce")

DEFAULT_EXIT_TIMEOUT_SECONDS = 5.0
_ENV = "OTEL_COMMERCE_EXIT_TIMEOUT_MS"

ExitWork = Callable[[], None]


def _timeout_from_env() -> float:
    raw = os.environ.get(_ENV, "").strip()
    if not raw:
        return DEFAULT_EXIT_TIMEOUT_SECONDS
    try:
        value = float(raw) / 1000
    except ValueError:
        value = -1.0
    if value != value or value <= 0:  # invalid: Settings reports it; exit still has a bound
        return DEFAULT_EXIT_TIMEOUT_SECONDS
    return value


class _ExitState:
    def __init__(self) -> None:
        # Re-entrant: a signal handler may run exit work on the thread it interrupted inside this lock.
        self.lock = threading.RLock()
        self.timeout: float | None = None  # set by configure(); else read from the environment
        self.deadline: float | None = None  # monotonic
        self.reason = ""
        self.done = threading.Event()
        self.runner: threading.Thread | None = None
        self.works: list[tuple[int, ExitWork]] = []  # (order, work); run in ascending order
        self.deferred: list[int] = []  # signals that arrived while the exit work ran on the main thread


_STATE = _ExitState()


def set_exit_timeout(seconds: float | None) -> None:
    """The exit budget in seconds (None: ``OTEL_COMMERCE_EXIT_TIMEOUT_MS`` or 5 s)."""
    _STATE.timeout = seconds


def exit_timeout() -> float:
    t = _STATE.timeout
    return _timeout_from_env() if t is None else t


def begin(reason: str) -> float:
    """Fix the exit deadline now unless an earlier exit path did; returns the monotonic deadline."""
    st = _STATE
    with st.lock:
        if st.deadline is None:
            st.deadline = time.monotonic() + exit_timeout()
            st.reason = reason
        return st.deadline


def exit_in_progress() -> bool:
    return _STATE.deadline is not None


def remaining() -> float | None:
    """Seconds left before the exit deadline (0.0 once passed); None when no exit path has started."""
    deadline = _STATE.deadline
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)


def interpreter_exiting() -> bool:
    """True during interpreter shutdown (``atexit`` handlers run after the main thread has stopped)."""
    return not threading.main_thread().is_alive()


def running_here() -> bool:
    """True when the exit work is running on the calling thread (a signal handler interrupted it)."""
    return _STATE.runner is threading.current_thread() and not _STATE.done.is_set()


def defer_signal(signum: int) -> None:
    """Re-raise ``signum`` under its default disposition once the exit work running here is done."""
    _STATE.deferred.append(signum)


def register_exit_work(work: ExitWork, order: int = 0) -> None:
    """Run ``work()`` once at exit (lower ``order`` first); it must respect :func:`remaining`."""
    with _STATE.lock:
        if not any(w is work for _, w in _STATE.works):
            _STATE.works.append((order, work))
            _STATE.works.sort(key=lambda item: item[0])


def run_exit(reason: str) -> None:
    """Begin the exit deadline (if no earlier path did) and run the exit work once, bounded by it.

    A second caller (another exit path) waits for the first one, within the same deadline.
    """
    st = _STATE
    deadline = begin(reason)
    with st.lock:
        runner = st.runner
        if runner is None:
            st.runner = threading.current_thread()
            works = [w for _, w in st.works]
    if runner is not None:
        if runner is not threading.current_thread():
            st.done.wait(max(deadline - time.monotonic(), 0.0) + 0.5)
        return
    try:
        for work in works:
            try:
                work()
            except Exception:
                logger.warning("otel-commerce: exit work %r failed; events it held may be lost", work, exc_info=True)
    finally:
        st.done.set()
        _raise_deferred()


def _raise_deferred() -> None:
    """A signal (e.g. ``Pool.terminate``'s SIGTERM) that arrived during the exit work ends the process now."""
    st = _STATE
    if not st.deferred or threading.current_thread() is not threading.main_thread():
        return
    import signal

    signum = st.deferred[0]
    st.deferred.clear()
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)


def _after_fork_in_child() -> None:
    st = _STATE
    st.lock = threading.RLock()
    st.deadline = None
    st.reason = ""
    st.done = threading.Event()
    st.runner = None
    st.deferred = []


# ------------------------------------------------------------------------- multiprocessing children
_MP_FINALIZER_PID = 0


def _mp_exit() -> None:
    run_exit("multiprocessing finalizer")


def register_mp_finalizer() -> None:
    """In a ``multiprocessing`` child, run the exit work from its finalizers (children leave via ``os._exit``).

    A start hook of the engine (``_delivery._process.add_start_hook``): runs whenever a delivery thread starts.
    """
    global _MP_FINALIZER_PID
    pid = os.getpid()
    if pid == _MP_FINALIZER_PID:
        return
    try:
        import multiprocessing
        import multiprocessing.util

        if multiprocessing.parent_process() is None:
            return
        multiprocessing.util.Finalize(None, _mp_exit, exitpriority=100)
        _MP_FINALIZER_PID = pid
    except Exception:  # pragma: no cover - never break start-up
        logger.debug("otel-commerce: cannot register a multiprocessing finalizer", exc_info=True)


def _exit_note() -> str:
    left = remaining()
    if left is None:
        return ""
    if left <= 0:
        return f" at the {exit_timeout() * 1000:.0f} ms exit deadline"
    return f" during exit ({left * 1000:.0f} ms of the {exit_timeout() * 1000:.0f} ms exit deadline left)"


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
add_start_hook(register_mp_finalizer)
set_exit_note(_exit_note)
# Registered when otel-commerce is first imported, so before any OTel provider holding our processor:
# atexit is LIFO, the providers' own exit hooks (our processor's shutdown among them) run first.
atexit.register(run_exit, "atexit")
