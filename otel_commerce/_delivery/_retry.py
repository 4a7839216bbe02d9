"""Retry policy: which failures are retried, jittered exponential backoff, ``Retry-After``."""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime

__all__ = ["RETRYABLE_STATUS", "backoff_seconds", "is_retryable_status", "parse_retry_after"]

#: HTTP statuses worth retrying besides every 5xx: request timeout and too many requests.
RETRYABLE_STATUS = frozenset({408, 429})

#: The longest ``Retry-After`` we honour; a server asking for more is waited on this long, then retried.
MAX_RETRY_AFTER_SECONDS = 300.0


def is_retryable_status(status: int) -> bool:
    """408, 429 and every 5xx are transient; other 4xx are rejections."""
    return status in RETRYABLE_STATUS or status >= 500


def backoff_seconds(failures: int, initial: float, maximum: float) -> float:
    """Delay before retry number ``failures`` (1-based): ``initial * 2**(failures-1)`` capped, ±50 % jitter."""
    base = min(maximum, initial * (2 ** min(max(failures - 1, 0), 30)))
    return base / 2 + random.uniform(0, base / 2) if base > 0 else 0.0


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
