"""The Hanzo analytics collector's wire format (facts §4): validation and mapping to our records.

Decisions (documented in docs/collector.md):

- ``event`` names the catalog knows (``order_completed``) become their type (``order.completed``);
  any other name is kept as the type unchanged (the Hanzo collector accepts any event name).
- The dedup key is ``properties.event_id``, else a top-level ``event_id``. Without one the collector
  assigns a fresh UUIDv7: the Go client sends no id and no timestamp, so two byte-identical posts
  may be two real events (two equal credit grants) — hashing the body would swallow one of them.
  Blind retries of such events are therefore not deduplicated, exactly as with Hanzo's collector.
- Trace ids come from ``properties.trace_id`` / ``span_id`` (or top-level), else from the request's
  ``traceparent`` header.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .._errors import EventValidationError
from .._model import CATALOG, format_timestamp, parse_timestamp, uuid7
from ._records import SPAN_ID_RE, TRACE_ID_RE, StoredEvent

__all__ = ["MAX_EVENT_ID_LENGTH", "hanzo_event", "type_for_name"]

MAX_EVENT_ID_LENGTH = 200

_TYPE_BY_NAME = {spec.collector_event: spec.type for spec in CATALOG.values()}
_STRING_KEYS = ("distinct_id", "organization_id", "session_id", "order_id", "product_id", "cart_id", "url", "referrer")
# Top-level keys that are copied into the envelope's ``data`` (when properties do not have them).
_DATA_KEYS = ("order_id", "product_id", "cart_id", "revenue", "quantity", "url", "referrer")
# Properties that are identity / correlation, not business data.
_META_PROPS = ("event_id", "trace_id", "span_id", "id")


def type_for_name(name: str) -> str:
    """``order_completed`` → ``order.completed`` for catalog events; other names are kept as they are."""
    return _TYPE_BY_NAME.get(name, name)


def _opt_str(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise EventValidationError(f"{where}{key} must be a string, got {type(value).__name__}")
    return value


def _check_number(obj: Mapping[str, Any], key: str, *, integer: bool) -> None:
    value = obj.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EventValidationError(f"{key} must be a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise EventValidationError(f"{key} must be a finite number")
    if integer and (not float(value).is_integer() or not 0 <= value < 2**32):
        raise EventValidationError(f"{key} must be an integer between 0 and 2^32-1, got {value!r}")


def _event_id(payload: Mapping[str, Any], props: Mapping[str, Any]) -> str:
    for where, obj in (("properties.", props), ("", payload)):
        value = obj.get("event_id")
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise EventValidationError(f"{where}event_id must be a string, got {type(value).__name__}")
        if len(value) > MAX_EVENT_ID_LENGTH:
            raise EventValidationError(f"{where}event_id is longer than {MAX_EVENT_ID_LENGTH} characters")
        return value
    return ""


def _trace_ids(payload: Mapping[str, Any], props: Mapping[str, Any]) -> tuple[str, str]:
    for where, obj in (("properties.", props), ("", payload)):
        trace_id = _opt_str(obj, "trace_id", where).lower()
        span_id = _opt_str(obj, "span_id", where).lower()
        if not trace_id:
            continue
        if not TRACE_ID_RE.match(trace_id):
            raise EventValidationError(f"{where}trace_id must be 32 hex digits, got {trace_id!r:.60}")
        if span_id and not SPAN_ID_RE.match(span_id):
            raise EventValidationError(f"{where}span_id must be 16 hex digits, got {span_id!r:.40}")
        return trace_id, span_id
    return "", ""


def _entity_id(event_type: str, props: Mapping[str, Any], fields: Mapping[str, Any]) -> str:
    explicit = props.get("id")
    if isinstance(explicit, str) and explicit:
        return explicit
    spec = CATALOG.get(event_type)
    if spec is None:
        return ""
    try:
        return spec.id.format_map(fields)
    except (KeyError, ValueError, IndexError):
        return ""


def hanzo_event(
    payload: Any,
    *,
    received_at: datetime,
    traceparent: tuple[str, str] = ("", ""),
) -> StoredEvent:
    """Validate one ``POST /event`` object and map it to a record (raises ``EventValidationError``)."""
    if not isinstance(payload, dict):
        raise EventValidationError(f"an event must be a JSON object, got {type(payload).__name__}")
    name = payload.get("event")
    if not isinstance(name, str) or not name.strip():
        raise EventValidationError("missing required field: event")
    props = payload.get("properties")
    if props is None:
        props = {}
    if not isinstance(props, dict):
        raise EventValidationError(f"properties must be an object, got {type(props).__name__}")
    strings = {key: _opt_str(payload, key, "") for key in _STRING_KEYS}
    _check_number(payload, "revenue", integer=False)
    _check_number(payload, "quantity", integer=True)
    raw_ts = payload.get("timestamp")
    if raw_ts is None or raw_ts == "":
        timestamp = received_at
    elif isinstance(raw_ts, str):
        timestamp = parse_timestamp(raw_ts)
    else:
        raise EventValidationError(f"timestamp must be an RFC 3339 string, got {type(raw_ts).__name__}")

    event_type = type_for_name(name)
    event_id = _event_id(payload, props) or uuid7()
    trace_id, span_id = _trace_ids(payload, props)
    if not trace_id:
        trace_id, span_id = traceparent

    data: dict[str, Any] = {k: v for k, v in props.items() if k not in _META_PROPS}
    for key in _DATA_KEYS:
        if key not in data and payload.get(key) not in (None, ""):
            data[key] = payload[key]
    fields = {**data, "user_id": strings["distinct_id"], "organization_id": strings["organization_id"]}
    entity_id = _entity_id(event_type, props, fields)

    envelope: dict[str, Any] = {
        "id": entity_id,
        "type": event_type,
        "timestamp": format_timestamp(timestamp),
        "organization_id": strings["organization_id"],
    }
    if strings["distinct_id"]:
        envelope["user_id"] = strings["distinct_id"]
    if strings["session_id"]:
        envelope["session_id"] = strings["session_id"]
    envelope["data"] = data
    envelope["event_id"] = event_id
    if trace_id:
        envelope["trace_id"] = trace_id
        if span_id:
            envelope["span_id"] = span_id
    return StoredEvent(
        event_id=event_id,
        source="hanzo",
        type=event_type,
        name=name,
        id=entity_id,
        organization_id=strings["organization_id"],
        user_id=strings["distinct_id"],
        session_id=strings["session_id"],
        trace_id=trace_id,
        span_id=span_id,
        timestamp=timestamp,
        received_at=received_at,
        payload=payload,
        envelope=envelope,
    )
