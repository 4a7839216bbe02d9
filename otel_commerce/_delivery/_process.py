"""Process hooks of the generic engine: the fork hold, start hooks and the exit note.

The engine knows no signals and no exit deadline; the composition root (``otel_commerce._runtime``)
plugs those in through this module:

- **fork hold**: while a delivery thread is starting (loop, sink clients, TLS), a ``fork()`` from another
  thread would copy a half-initialised HTTP stack or an OpenSSL lock held by that thread; the ``before``
  fork hook waits (at most :data:`FORK_HOLD_SECONDS`) until no start-up is in progress
  (:func:`enter_hold` / :func:`leave_hold`, also used by sinks around a TLS handshake);
- **start hooks** (:func:`add_start_hook`): run on the caller's thread each time a delivery thread starts
  (also in a forked or spawned child), e.g. to register a ``multiprocessing`` finalizer;
- **exit note** (:func:`set_exit_note`): text added to the shutdown WARNING (e.g. the exit deadline);
- **late submit** (:func:`set_late_submit`): what a shut-down engine does with an event submitted after its
  shutdown (at exit: a last bounded attempt; never a silent drop).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = [
    "FORK_HOLD_SECONDS",
    "add_start_hook",
    "enter_hold",
    "exit_note",
    "late_submit",
    "leave_hold",
    "run_start_hooks",
    "set_exit_note",
    "set_late_submit",
]

logger = logging.getLogger("otel_commerce")

#: The longest a ``fork()`` waits for a delivery thread's start-up to finish.
FORK_HOLD_SECONDS = 1.0

_start_hooks: list[Callable[[], None]] = []
_exit_note: Callable[[], str] | None = None
_late_submit: Callable[[Any, Any], bool] | None = None


def add_start_hook(hook: Callable[[], None]) -> None:
    """Run ``hook()`` (never raising into the engine) whenever a delivery thread has been started."""
    if not any(h is hook for h in _start_hooks):
        _start_hooks.append(hook)


def run_start_hooks() -> None:
    for hook in list(_start_hooks):
        try:
            hook()
        except Exception:  # pragma: no cover - never break start-up
            logger.warning("otel-commerce: start hook %r failed (an exit path may not deliver)", hook, exc_info=True)


def set_exit_note(note: Callable[[], str] | None) -> None:
    """``note()`` returns the text appended to the shutdown WARNING (``""``: nothing)."""
    global _exit_note
    _exit_note = note


def exit_note() -> str:
    note = _exit_note
    if note is None:
        return ""
    try:
        return note()
    except Exception:  # pragma: no cover
        return ""


def set_late_submit(hook: Callable[[Any, Any], bool] | None) -> None:
    """``hook(engine, item)`` takes an event submitted to ``engine`` after its shutdown: True when it took it
    (delivered, spooled, or counted and logged itself), False to let the engine count it dropped."""
    global _late_submit
    _late_submit = hook


def late_submit(engine: Any, item: Any) -> bool:
    hook = _late_submit
    if hook is None:
        return False
    try:
        return hook(engine, item)
    except Exception:  # pragma: no cover - never raise into submit
        logger.warning("otel-commerce: late submit hook failed; the event is counted dropped", exc_info=True)
        return False


# ---------------------------------------------------------------------------------------- fork hold
_hold = threading.Condition(threading.Lock())
_busy = 0


def enter_hold() -> None:
    """Hold ``fork()`` from other threads (each waits at most :data:`FORK_HOLD_SECONDS`) until :func:`leave_hold`."""
    global _busy
    with _hold:
        _busy += 1


def leave_hold() -> None:
    global _busy
    with _hold:
        _busy = max(_busy - 1, 0)
        if _busy == 0:
            _hold.notify_all()


def _before_fork() -> None:
    deadline = time.monotonic() + FORK_HOLD_SECONDS
    with _hold:
        while _busy > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                logger.debug("otel-commerce: forking while a delivery thread is still starting")
                return
            _hold.wait(left)


def _after_fork_in_child() -> None:
    global _hold, _busy
    _hold = threading.Condition(threading.Lock())
    _busy = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
