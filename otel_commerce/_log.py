"""Logging: failures visible by default, rate-limited, redacted (logger ``otel_commerce``).

* :func:`failure` — a WARNING for the first occurrence of each ``(sink, reason)`` at once, with the real
  cause, then at most one summary per ``(sink, reason)`` every :data:`SUMMARY_INTERVAL_SECONDS`
  ("jetstream unreachable for 30 s, 1,204 events waiting"); :func:`recovered` logs the end of an
  outage at INFO. Every message goes through :func:`otel_commerce._redact.redact`.
* :func:`cause_of` — the real cause of a nats-py ``NoServersError`` (the last error its ``error_cb``
  saw: an authorization violation, a certificate error, a refused connection) or of a chained error.
* :func:`startup` — one INFO line saying where events go (sinks, mode, spool).
* httpx / httpcore per-request INFO lines from our delivery thread are filtered out (the application's
  own httpx calls are untouched) unless ``OTEL_COMMERCE_DEBUG=1``, which also turns on DEBUG for
  ``otel_commerce`` with a stderr handler.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ._redact import redact

__all__ = [
    "SUMMARY_INTERVAL_SECONDS",
    "FailureLog",
    "cause_of",
    "debug_enabled",
    "failure",
    "recovered",
    "setup",
    "startup",
]

logger = logging.getLogger("otel_commerce")

#: Minimum time between two WARNING summaries of the same (sink, reason).
SUMMARY_INTERVAL_SECONDS = 30.0
DEBUG_ENV = "OTEL_COMMERCE_DEBUG"


def debug_enabled() -> bool:
    """True when ``OTEL_COMMERCE_DEBUG`` is ``1`` / ``true`` / ``yes``."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


_setup_done = False


def setup() -> None:
    """Silence httpx/httpcore per-request INFO lines; with ``OTEL_COMMERCE_DEBUG=1`` log ours at DEBUG."""
    global _setup_done
    if _setup_done:
        return
    _setup_done = True
    if debug_enabled():
        logger.setLevel(logging.DEBUG)
        if not logger.handlers and not logging.getLogger().handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            logger.addHandler(handler)
        return
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).addFilter(_not_from_delivery_thread)


def _not_from_delivery_thread(record: logging.LogRecord) -> bool:
    """Drop httpx/httpcore records emitted by our delivery threads (their per-request INFO lines)."""
    return not (record.levelno < logging.WARNING and (record.threadName or "").endswith("-delivery"))


def cause_of(exc: BaseException, seen: Sequence[BaseException] = ()) -> str:
    """A one-line description of the real cause of ``exc``.

    For nats-py's ``NoServersError`` (which says nothing) the last error reported to the connection's
    ``error_cb`` (``seen``) is used, e.g. ``nats: 'Authorization Violation'`` or
    ``ConnectionRefusedError: Connect call failed``; otherwise the deepest chained cause is added.
    """
    if type(exc).__name__ == "NoServersError" and seen:
        # a server that refuses the credentials then resets the socket: the reset is not the cause
        telling = [e for e in seen if not isinstance(e, (ConnectionResetError, BrokenPipeError, EOFError))]
        return redact(_describe((telling or list(seen))[-1]))
    root: BaseException = exc
    depth = 0
    while root.__cause__ is not None and depth < 5:
        root = root.__cause__
        depth += 1
    text = _describe(exc)
    if root is not exc and str(root) not in text:
        text += f" (caused by {_describe(root)})"
    return redact(text)


def _describe(exc: BaseException) -> str:
    message = str(exc).strip()
    name = type(exc).__name__
    if not message:
        return name
    if name in ("Error", "Exception") or message.startswith(name):
        return message
    return f"{name}: {message}"


@dataclass
class _State:
    since: float
    last_logged: float
    count: int
    outage: bool
    message: str


class FailureLog:
    """Rate-limited WARNING reporter per ``(sink, reason)`` (thread-safe; one per process is enough)."""

    def __init__(
        self, interval_seconds: float = SUMMARY_INTERVAL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._states: dict[tuple[str, str], _State] = {}

    def failure(
        self,
        sink: str,
        reason: str,
        message: object,
        *,
        count: int = 1,
        waiting: int | None = None,
        outage: bool = False,
    ) -> None:
        """Report ``count`` failure(s) of ``sink`` for ``reason`` (e.g. ``unreachable``, ``rejected``).

        ``outage=True`` marks a condition that ends with :meth:`recovered` (an unreachable server);
        ``waiting`` is the number of events still waiting for the sink, shown in summaries.
        """
        now = self._clock()
        text = redact(message)
        key = (sink, reason)
        with self._lock:
            state = self._states.get(key)
            if state is None:
                self._states[key] = _State(now, now, 0, outage, text)
                line = f"otel-commerce: {sink} {reason}: {text}"
            else:
                state.count += count
                state.message = text
                if now - state.last_logged < self.interval:
                    return
                line = self._summary(sink, reason, state, now, waiting)
                state.last_logged = now
                state.count = 0
        logger.warning("%s", line)

    @staticmethod
    def _summary(sink: str, reason: str, state: _State, now: float, waiting: int | None) -> str:
        seconds = now - state.since
        parts = [f"otel-commerce: {sink} {reason} for {seconds:,.0f} s"]
        if state.count:
            parts.append(f"{state.count:,} more time(s)")
        if waiting is not None:
            parts.append(f"{waiting:,} events waiting")
        return ", ".join(parts) + f"; last: {state.message}"

    def recovered(self, sink: str) -> None:
        """End ``sink``'s outages (logged at INFO once, with their duration)."""
        with self._lock:
            if not any(s == sink and st.outage for (s, _), st in self._states.items()):
                return
            ended = [(r, st) for (s, r), st in self._states.items() if s == sink and st.outage]
            for reason, _ in ended:
                del self._states[(sink, reason)]
        now = self._clock()
        for reason, st in ended:
            logger.info("%s", f"otel-commerce: {sink} recovered ({reason} for {now - st.since:,.0f} s)")

    def reset(self) -> None:
        with self._lock:
            self._states.clear()


FAILURES = FailureLog()
failure = FAILURES.failure
recovered = FAILURES.recovered


def startup(sinks: Sequence[str], mode: str, spool: str | None = None) -> None:
    """The one INFO line at start-up: where events go."""
    where = ", ".join(redact(s) for s in sinks) or "nowhere (no sink configured)"
    line = f"otel-commerce: delivering commerce events to {where}; mode={mode}"
    if spool:
        line += f"; spool {spool}"
    logger.info("%s", line)
