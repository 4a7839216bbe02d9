"""Counters of the event pipeline as OTel metrics: ``commerce.events.<name>``.

``count("exported", 3, sink="jetstream")`` adds to the counter ``commerce.events.exported`` with the
attribute ``sink``. Counters are created lazily on the global meter provider (a proxy until the app
installs one, so counts are not lost to import order). Cheap and never raises.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

__all__ = ["METRIC_NAMES", "count"]

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

_counters: dict[str, Any] = {}
_lock = threading.Lock()


def _counter(name: str) -> Any:
    counter = _counters.get(name)
    if counter is None:
        with _lock:
            counter = _counters.get(name)
            if counter is None:
                from opentelemetry import metrics

                from .._scope import SCHEMA_URL, SCOPE_NAME, SCOPE_VERSION

                meter = metrics.get_meter(SCOPE_NAME, SCOPE_VERSION, schema_url=SCHEMA_URL)
                counter = meter.create_counter(
                    f"commerce.events.{name}", unit="{event}", description=_DESCRIPTIONS.get(name, "")
                )
                _counters[name] = counter
    return counter


def count(name: str, n: int = 1, *, sink: str | None = None, reason: str | None = None, via: str | None = None) -> None:
    """Add ``n`` to ``commerce.events.<name>`` with the given attributes (never raises)."""
    if n <= 0:
        return
    try:
        attributes: dict[str, str] = {}
        if sink is not None:
            attributes["sink"] = sink
        if reason is not None:
            attributes["reason"] = reason
        if via is not None:
            attributes["via"] = via
        _counter(name).add(n, attributes)
    except Exception:  # pragma: no cover - metrics must never break delivery
        logger.debug("otel-commerce: cannot record metric %s", name, exc_info=True)


def _reinit_after_fork() -> None:
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
