"""What the collector stores: one ``StoredEvent`` per accepted event, whatever the wire it came from."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

import orjson

from .._errors import EventValidationError

__all__ = [
    "SPAN_ID_RE",
    "TRACE_ID_RE",
    "Source",
    "StoredEvent",
    "check_storable",
    "parse_traceparent",
    "store_timestamp",
]

Source = Literal["hanzo", "otlp"]

TRACE_ID_RE = re.compile(r"^[0-9a-f]{32}$")
SPAN_ID_RE = re.compile(r"^[0-9a-f]{16}$")
_TRACEPARENT_RE = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")


def store_timestamp(ts: datetime) -> str:
    """Fixed-width RFC 3339 UTC (always 6 fractional digits) so that text order is time order."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_traceparent(value: str | None) -> tuple[str, str]:
    """``(trace_id, span_id)`` of a W3C ``traceparent`` header, ``("", "")`` when absent or invalid."""
    if not value:
        return "", ""
    m = _TRACEPARENT_RE.match(value.strip().lower())
    if m is None or m.group(1) == "0" * 32 or m.group(2) == "0" * 16:
        return "", ""
    return m.group(1), m.group(2)


@dataclass(slots=True)
class StoredEvent:
    """One row of the store.

    ``payload`` is what was received (the Hanzo JSON object, or for OTLP the envelope);
    ``envelope`` is always the ``CommerceEvent``-shaped JSON object (what is printed and forwarded).
    """

    event_id: str
    source: Source
    type: str
    name: str
    id: str
    organization_id: str
    user_id: str
    session_id: str
    trace_id: str
    span_id: str
    timestamp: datetime
    received_at: datetime
    payload: dict[str, Any]
    envelope: dict[str, Any]
    seq: int = 0

    @property
    def subject(self) -> str:
        return "commerce." + self.type


def check_storable(event: StoredEvent) -> None:
    """Raise ``EventValidationError`` unless the store can write ``event`` (timestamps representable in
    UTC, payload and envelope JSON-encodable — orjson refuses nesting deeper than 254 levels)."""
    try:
        store_timestamp(event.timestamp)
        store_timestamp(event.received_at)
    except (OverflowError, ValueError) as exc:
        raise EventValidationError(f"timestamp out of range: {exc}") from exc
    for what, value in (("event", event.payload), ("envelope", event.envelope)):
        try:
            orjson.dumps(value)
        except (orjson.JSONEncodeError, TypeError) as exc:
            raise EventValidationError(f"{what} cannot be stored: {exc}") from exc
