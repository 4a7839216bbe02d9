"""Timestamps of events: naive means UTC on every path; instants no hop can encode are refused.

The range is OTLP's: ``time_unix_nano`` is an unsigned 64-bit count of nanoseconds, so
1970-01-01T00:00:00Z .. 2554-07-21T23:34:33.709551Z (an OTLP exporter fails the whole batch otherwise).

The one place that turns a ``datetime`` into the UTC instant we record, the OTel nanosecond timestamp
(exact to the microsecond, no float rounding) and the unix seconds / milliseconds of CAPI
``event_time`` and the catalog's ``<unix ms>`` ids.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from .._errors import EventValidationError

__all__ = ["from_unix_ns", "to_unix_ms", "to_unix_ns", "to_unix_seconds", "utc"]

_UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
#: the last microsecond whose nanosecond count fits OTLP's uint64 ``time_unix_nano``
_LAST = _EPOCH + timedelta(microseconds=(2**64 - 1) // 1_000)
_RANGE = "1970-01-01T00:00:00Z .. 2554-07-21T23:34:33.709551Z (OTLP's unsigned 64-bit nanoseconds)"


def utc(ts: datetime) -> datetime:
    """``ts`` as an aware UTC datetime; a naive ``ts`` is taken as UTC (never as local time).

    Raises ``EventValidationError`` for a non-datetime and when the UTC instant falls outside
    1970-01-01T00:00:00Z .. 2554-07-21T23:34:33.709551Z: OTLP's ``time_unix_nano`` is an unsigned 64-bit
    count of nanoseconds (the OTLP log encoder fails a whole batch on one such record).
    """
    if not isinstance(ts, datetime):
        raise EventValidationError(f"timestamp must be a datetime, got {type(ts).__name__}")
    tz = ts.tzinfo
    if tz is None:
        out = ts.replace(tzinfo=_UTC)
    elif tz is _UTC:
        out = ts
    else:
        try:
            out = ts.astimezone(_UTC)
        except (OverflowError, ValueError) as exc:
            raise EventValidationError(f"timestamp {ts.isoformat()} is outside {_RANGE}") from exc
    if not _EPOCH <= out <= _LAST:
        raise EventValidationError(f"timestamp {ts.isoformat()} is outside {_RANGE}")
    return out


def to_unix_ns(ts: datetime) -> int:
    """Nanoseconds since the epoch, exact (integer arithmetic; naive = UTC)."""
    # an aware UTC datetime in range (every event's timestamp): utc() would return it as it is
    d = (ts if type(ts) is datetime and ts.tzinfo is _UTC and _EPOCH <= ts <= _LAST else utc(ts)) - _EPOCH
    return (d.days * 86_400 + d.seconds) * 1_000_000_000 + d.microseconds * 1_000


def to_unix_ms(ts: datetime) -> int:
    """Milliseconds since the epoch, floored (naive = UTC)."""
    return to_unix_ns(ts) // 1_000_000


def to_unix_seconds(ts: datetime) -> int:
    """Whole seconds since the epoch, floored (naive = UTC): CAPI ``event_time``."""
    return to_unix_ns(ts) // 1_000_000_000


def from_unix_ns(ns: int) -> datetime:
    """The aware UTC datetime of an OTel nanosecond timestamp, exact to the microsecond."""
    return _EPOCH + timedelta(microseconds=ns // 1_000)
