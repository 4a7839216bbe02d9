"""Retry policy: which failures are retried, jittered exponential backoff, ``Retry-After``.

Rules (RFC 9110 §10.2.3 for ``Retry-After``; the OTLP exporter specification for throttling):

- 408, 429 and every 5xx are transient; other 4xx are rejections.
- The pause before a retry is ``max(backoff, Retry-After)``: the backoff is ``initial * 2**(n-1)``
  capped at ``maximum`` with ±50 % jitter; a ``Retry-After`` is waited at least as long as asked plus
  0-20 % jitter (so that many clients throttled together do not come back in the same instant), and
  the whole pause is capped at :data:`MAX_RETRY_AFTER_SECONDS`.
- ``Retry-After`` is delta-seconds (decimals tolerated) or an HTTP date. Absurd values are handled:
  negative or unparseable → ignored (the backoff applies); a date in the past → 0; more than
  :data:`MAX_RETRY_AFTER_SECONDS` → capped.
"""

from __future__ import annotations

import math
import random
import re
import time
from email.utils import parsedate_to_datetime

__all__ = [
    "MAX_RETRY_AFTER_SECONDS",
    "RETRYABLE_STATUS",
    "backoff_seconds",
    "is_retryable_status",
    "is_throttle",
    "parse_retry_after",
    "retry_delay_seconds",
]

#: HTTP statuses worth retrying besides every 5xx: request timeout and too many requests.
RETRYABLE_STATUS = frozenset({408, 429})

#: The longest pause we take before a retry; a server asking for more is retried after this long.
MAX_RETRY_AFTER_SECONDS = 300.0

_DELTA_SECONDS = re.compile(r"^\d+(\.\d+)?$")


def is_retryable_status(status: int) -> bool:
    """408, 429 and every 5xx are transient; other 4xx are rejections."""
    return status in RETRYABLE_STATUS or status >= 500


def is_throttle(status: int | None, retry_after: float | None) -> bool:
    """True for an answer that asks us to slow down (429, or any answer with ``Retry-After``).

    Waiting out a throttle is not a failed attempt: the engine does not count it toward
    ``max_attempts`` (the event's age cap still bounds it).
    """
    return status == 429 or retry_after is not None


def backoff_seconds(failures: int, initial: float, maximum: float) -> float:
    """Delay before retry number ``failures`` (1-based): ``initial * 2**(failures-1)`` capped, ±50 % jitter."""
    base = min(maximum, initial * (2 ** min(max(failures - 1, 0), 30)))
    return base / 2 + random.uniform(0, base / 2) if base > 0 else 0.0


def retry_delay_seconds(failures: int, initial: float, maximum: float, retry_after: float | None) -> float:
    """Pause before the next attempt: ``max(backoff, Retry-After + 0-20 % jitter)``, capped (see module doc)."""
    delay = backoff_seconds(failures, initial, maximum)
    if retry_after is not None and retry_after > 0:
        delay = max(delay, retry_after * random.uniform(1.0, 1.2))
    return min(delay, MAX_RETRY_AFTER_SECONDS)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date).

    Returns None when absent, negative or unparseable; 0.0 for a date in the past; at most
    :data:`MAX_RETRY_AFTER_SECONDS`. ``now`` (epoch seconds) is for tests.
    """
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.match(value):
        seconds = min(float(value), MAX_RETRY_AFTER_SECONDS)  # a huge number of digits is just "a long time"
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when is None or when.tzinfo is None:  # RFC 9110 dates are always GMT; a naive one is garbage
            return None
        try:
            seconds = when.timestamp() - (time.time() if now is None else now)
        except (OverflowError, OSError, ValueError):
            return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
