"""Counters of the event pipeline as OTel metrics: ``commerce.events.<name>``.

``count("exported", 3, sink="jetstream")`` adds to the counter ``commerce.events.exported`` with the
attribute ``sink``. The counters are observable counters created lazily on the global meter provider
(a proxy until the app installs one, so counts are not lost to import order); ``count`` only adds to a
running total, so it costs no SDK call on the caller's or the delivery thread. Never raises.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import _count_elements, deque  # type: ignore[attr-defined]
from itertools import repeat, starmap
from typing import Any

__all__ = ["METRIC_NAMES", "add_one", "count", "count_key", "total"]

logger = logging.getLogger("otel_commerce")

#: The counters we publish (DESIGN.md "Guarantees").
METRIC_NAMES = ("recorded", "exported", "retried", "dropped", "rejected", "discarded")

_DESCRIPTIONS = {
    "recorded": "Commerce events recorded by the application",
    "exported": "Commerce events delivered to a sink",
    "retried": "Commerce event deliveries retried after a transient failure",
    "dropped": "Commerce events given up on (queue full, retry cap, age cap, shutdown)",
    "rejected": "Commerce events rejected by a sink (invalid, 4xx)",
    "discarded": "Commerce events discarded because their transaction did not commit",
}

#: Running totals per ``(name, sink, reason, via)``: ``count`` only adds here (under a lock: ~0.1 µs,
#: no attribute dict, no SDK call); the observable counters report them when a reader collects.
_totals: dict[tuple[str, str | None, str | None, str | None], int] = {}
_totals_lock = threading.Lock()
#: The per-event adds of :func:`add_one` (the recording thread's hot path), one key each, not yet in ``_totals``:
#: ``deque.append`` is atomic (no lock, ~15 ns); folded into ``_totals`` (:func:`_fold`) before any read, by every
#: :func:`count` (the delivery thread's per-batch counts) and whenever more than ``_FOLD_AT`` are waiting.
_ones: deque[tuple[str, str | None, str | None, str | None]] = deque()
_append_one = _ones.append
_FOLD_AT = 4096
_observed: set[str] = set()
_lock = threading.Lock()


def _observe(name: str) -> None:
    """Create the observable counter ``commerce.events.<name>`` once (on the global meter provider:
    a proxy until the app installs one, which then takes the instrument over, totals included)."""
    with _lock:
        if name in _observed:
            return
        from opentelemetry import metrics

        from .._scope import SCHEMA_URL, SCOPE_NAME, SCOPE_VERSION

        meter = metrics.get_meter(SCOPE_NAME, SCOPE_VERSION, schema_url=SCHEMA_URL)
        meter.create_observable_counter(
            f"commerce.events.{name}",
            callbacks=[_callback(name)],
            unit="{event}",
            description=_DESCRIPTIONS.get(name, ""),
        )
        _observed.add(name)


def _callback(name: str) -> Any:
    def observe(options: Any) -> list[Any]:
        from opentelemetry.metrics import Observation

        with _totals_lock:
            _fold_locked()
            rows = [(key, n) for key, n in _totals.items() if key[0] == name]
        out = []
        for (_, sink, reason, via), n in rows:
            attributes = {}
            if sink is not None:
                attributes["sink"] = sink
            if reason is not None:
                attributes["reason"] = reason
            if via is not None:
                attributes["via"] = via
            out.append(Observation(n, attributes))
        return out

    return observe


def count(name: str, n: int = 1, *, sink: str | None = None, reason: str | None = None, via: str | None = None) -> None:
    """Add ``n`` to ``commerce.events.<name>`` with the given attributes (never raises).

    Cumulative totals, reported by an observable counter at collection time: the per-call cost is one
    dict update under a lock, whether or not an SDK ``MeterProvider`` is installed.
    """
    if n <= 0:
        return
    key = (name, sink, reason, via)
    try:
        with _totals_lock:
            if _ones:
                _fold_locked()
            _totals[key] = _totals.get(key, 0) + n
        if name not in _observed:
            _observe(name)
    except Exception:  # pragma: no cover - metrics must never break delivery
        logger.debug("otel-commerce: cannot record metric %s", name, exc_info=True)


def count_key(
    name: str, *, sink: str | None = None, reason: str | None = None, via: str | None = None
) -> tuple[str, str | None, str | None, str | None]:
    """A prebuilt key for :func:`add_one` (hot paths: no keyword call, no tuple per event)."""
    return (name, sink, reason, via)


def add_one(key: tuple[str, str | None, str | None, str | None]) -> None:
    """``count(*key)`` for one event (``key`` from :func:`count_key`); never raises.

    No lock: the key is appended to ``_ones`` (atomic), folded into the totals before they are read (exact).
    """
    _append_one(key)
    if len(_ones) > _FOLD_AT or key[0] not in _observed:
        _fold_slowly(key[0])


def _fold_slowly(name: str) -> None:
    try:
        with _totals_lock:
            _fold_locked()
        if name not in _observed:
            _observe(name)
    except Exception:  # pragma: no cover - metrics must never break delivery
        logger.debug("otel-commerce: cannot record metric %s", name, exc_info=True)


def _fold_locked() -> None:
    """Move the adds waiting in ``_ones`` into ``_totals`` (``_totals_lock`` held). Only as many as were there
    when it began are taken (one ``popleft`` each, atomic): an add racing it waits for the next fold."""
    n = len(_ones)
    if n:
        _count_elements(_totals, starmap(_ones.popleft, repeat((), n)))


def total(name: str, **attributes: str) -> int:
    """The running total of ``commerce.events.<name>`` over the rows matching ``attributes`` (tests, stats)."""
    with _totals_lock:
        _fold_locked()
        rows = list(_totals.items())
    want = {k: v for k, v in attributes.items()}
    out = 0
    for (n, sink, reason, via), value in rows:
        row = {"sink": sink, "reason": reason, "via": via}
        if n == name and all(row.get(k) == v for k, v in want.items()):
            out += value
    return out


def _reinit_after_fork() -> None:
    global _lock, _totals_lock
    _lock = threading.Lock()
    _totals_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
