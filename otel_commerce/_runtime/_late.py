"""Events submitted after delivery shut down: a last bounded attempt at exit, never a silent loss.

An ``atexit`` hook registered before ``import otel_commerce`` runs after our exit work, and a daemon thread
may still record while (or after) it runs: such an event reaches a shut-down engine. While the process
exits, it gets a last synchronous attempt: a one-shot engine with the settings in force, shut down within
what is left of the exit deadline (``OTEL_COMMERCE_EXIT_TIMEOUT_MS``) — what it cannot deliver by then
is spooled when the spool is on, else counted ``dropped{reason=shutdown}`` and logged at WARNING by that
engine. Outside exit (an event racing ``otel_commerce.shutdown()`` or a reconfiguration) the shut-down
engine counts it ``dropped{reason=shutdown}`` and it is logged here at WARNING (at most once a minute).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from .._delivery import set_late_submit
from . import _exit

__all__ = ["deliver_late", "late_submit"]

logger = logging.getLogger("otel_commerce")

_WARN_EVERY_SECONDS = 60.0
_LOCK = threading.Lock()  # late events go out one at a time (each within what is left of the deadline)
_warned_at = -_WARN_EVERY_SECONDS


def _warn(message: str) -> None:
    global _warned_at
    now = time.monotonic()
    if now - _warned_at >= _WARN_EVERY_SECONDS:
        _warned_at = now
        logger.warning("otel-commerce: %s", message)


def deliver_late(pending: Any) -> bool:
    """Deliver ``pending`` through a one-shot engine shut down within what is left of the exit deadline.

    True when that engine took it (delivered, or spooled / counted and logged at WARNING by its shutdown);
    False when no engine could be built (the caller counts the drop).
    """
    from ._state import RUNTIME, build_engine

    with _LOCK:
        try:
            engine = build_engine(RUNTIME.settings, RUNTIME.report_error)
            if engine is None:
                return False
            engine.submit(pending)
            engine.shutdown(_exit.remaining() or 0.0)
        except Exception as exc:  # e.g. no new thread at interpreter shutdown
            _warn(f"an event recorded after the exit work could not be delivered ({exc}); dropped")
            return False
    return True


def late_submit(engine: Any, pending: Any) -> bool:
    """The engine's hook for an event submitted after its shutdown (``_delivery._process.set_late_submit``)."""
    if _exit.exit_in_progress() and deliver_late(pending):
        return True
    _warn(
        "an event was submitted after its delivery engine shut down: dropped (counted dropped{reason=shutdown});"
        " record events before otel_commerce.shutdown()"
    )
    return False


set_late_submit(late_submit)
