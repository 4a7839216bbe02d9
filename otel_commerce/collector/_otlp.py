"""OTLP/HTTP logs (protobuf and JSON) → commerce records.

Only log records whose ``event_name`` starts with ``commerce.`` are events; the others are accepted
and ignored. Both shapes are read (``otel_commerce._shape``): details in attributes (``commerce.data``
map, ``commerce.items``, flat ``commerce.*`` keys), or the envelope as the body map. A record carries no dedup key of its own when the
body and attributes have no ``event_id``: the collector then derives a UUIDv5 from the serialised
record, so an exporter's retry of the same request is stored once.
"""

from __future__ import annotations

import base64
import contextlib
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from google.protobuf import json_format  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from .._errors import EventValidationError
from .._model import EVENT_ID_NAMESPACE, SUBJECT_PREFIX, CommerceEvent, OrderItem, apply_marketing, subject_for
from .._model._time import from_unix_ns
from .._otel._shape import envelope_from_record
from ._records import StoredEvent

__all__ = [
    "OtlpResult",
    "decode_json_request",
    "decode_protobuf_request",
    "events_from_request",
    "export_response",
]

_MAX_ANY_DEPTH = 32


@dataclass(slots=True)
class OtlpResult:
    """Commerce records found in one export request, and the commerce records that were refused."""

    events: list[StoredEvent] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    ignored: int = 0


# --------------------------------------------------------------------------- decoding
def decode_protobuf_request(body: bytes) -> ExportLogsServiceRequest:
    """Parse a binary ``ExportLogsServiceRequest`` (raises ``EventValidationError``)."""
    try:
        request: ExportLogsServiceRequest = ExportLogsServiceRequest.FromString(body)
        return request
    except (DecodeError, ValueError) as exc:
        raise EventValidationError(f"invalid OTLP protobuf: {exc}") from exc


def _hex_to_b64(value: Any, name: str, size: int) -> Any:
    if not isinstance(value, str) or value == "":
        return value
    try:
        raw = bytes.fromhex(value)
    except ValueError as exc:
        raise EventValidationError(f"{name} must be hex in OTLP JSON, got {value!r:.60}") from exc
    if len(raw) != size:
        raise EventValidationError(f"{name} must be {size * 2} hex digits, got {value!r:.60}")
    return base64.b64encode(raw).decode()


def decode_json_request(body: bytes) -> ExportLogsServiceRequest:
    """Parse an OTLP/JSON request: hex trace/span ids (OTLP) are turned into proto3-JSON base64 first."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise EventValidationError(f"malformed JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise EventValidationError("an OTLP/JSON request must be a JSON object")
    try:
        for rl in doc.get("resourceLogs") or doc.get("resource_logs") or ():
            for sl in rl.get("scopeLogs") or rl.get("scope_logs") or ():
                for rec in sl.get("logRecords") or sl.get("log_records") or ():
                    for key, size in (("traceId", 16), ("trace_id", 16), ("spanId", 8), ("span_id", 8)):
                        if key in rec:
                            rec[key] = _hex_to_b64(rec[key], key, size)
        request: ExportLogsServiceRequest = ExportLogsServiceRequest()
        json_format.ParseDict(doc, request, ignore_unknown_fields=True)
        return request
    except (AttributeError, TypeError) as exc:
        raise EventValidationError(f"malformed OTLP/JSON structure: {exc}") from exc
    except json_format.ParseError as exc:
        raise EventValidationError(f"invalid OTLP/JSON: {exc}") from exc


def export_response(result: OtlpResult, *, as_json: bool) -> bytes:
    """``ExportLogsServiceResponse``, with ``partial_success`` when commerce records were refused."""
    resp = ExportLogsServiceResponse()
    if result.rejected:
        resp.partial_success.rejected_log_records = len(result.rejected)
        resp.partial_success.error_message = "; ".join(result.rejected[:5])[:1000]
    if as_json:
        text: str = json_format.MessageToJson(resp, indent=None)
        return text.encode()
    raw: bytes = resp.SerializeToString()
    return raw


# --------------------------------------------------------------------------- AnyValue
def any_value(value: AnyValue, depth: int = 0) -> Any:
    """An OTLP ``AnyValue`` as a plain Python value (kvlist → dict, array → list, bytes → base64)."""
    if depth > _MAX_ANY_DEPTH:
        raise EventValidationError("log record body is nested too deeply")
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value, depth + 1) for kv in value.kvlist_value.values}
    if kind == "array_value":
        return [any_value(v, depth + 1) for v in value.array_value.values]
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)


def _attributes(kvs: Iterator[KeyValue] | Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


# --------------------------------------------------------------------------- records → events
def _event_name(record: LogRecord, attrs: Mapping[str, Any]) -> str:
    name = record.event_name or attrs.get("event.name") or ""
    return name if isinstance(name, str) else ""


def _record_time(record: LogRecord) -> datetime | None:
    ns = record.time_unix_nano or record.observed_time_unix_nano
    if not ns:
        return None
    return from_unix_ns(ns)  # exact to the microsecond


def _items(body: Mapping[str, Any]) -> list[OrderItem]:
    raw = body.get("items")
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(i, Mapping) for i in raw):
        raise EventValidationError("items must be a list of maps")
    return [OrderItem.from_dict(i) for i in raw]


def record_event(
    record: LogRecord,
    *,
    received_at: datetime,
    traceparent: tuple[str, str] = ("", ""),
) -> StoredEvent | None:
    """The commerce record as a ``StoredEvent``; ``None`` for a non-commerce record; raises when invalid."""
    attrs = _attributes(record.attributes)
    name = _event_name(record, attrs)
    if not name.startswith(SUBJECT_PREFIX):
        return None
    body = any_value(record.body)
    if isinstance(body, str) and body.lstrip().startswith("{"):
        with contextlib.suppress(orjson.JSONDecodeError):
            body = orjson.loads(body)
    items: list[OrderItem] = []
    # either shape: details in attributes (commerce.data / commerce.items), or the envelope as the body
    envelope = envelope_from_record(name, body if isinstance(body, dict) else None, attrs)
    items = _items(envelope)
    envelope.pop("items", None)
    if not envelope.get("timestamp"):
        ts = _record_time(record) or received_at
        envelope["timestamp"] = ts.isoformat()
    if len(record.trace_id) == 16 and any(record.trace_id):
        envelope["trace_id"] = record.trace_id.hex()
        envelope["span_id"] = record.span_id.hex() if len(record.span_id) == 8 and any(record.span_id) else ""
    elif not envelope.get("trace_id") and traceparent[0]:
        envelope["trace_id"], envelope["span_id"] = traceparent

    event = CommerceEvent.from_dict(envelope)
    if not event.type:
        raise EventValidationError(f"{name}: empty event type")
    subject_for(event.type)  # validates the type as a subject token
    if not event.event_id:
        event.event_id = str(uuid.uuid5(EVENT_ID_NAMESPACE, record.SerializeToString(deterministic=True).hex()))
    event.trace_id = event.trace_id.lower()
    event.span_id = event.span_id.lower()
    apply_marketing(event, items)
    env = event.to_dict()  # the envelope is a public contract: forwarded as is, no extra keys
    payload = {**env, "items": [i.to_dict() for i in items]} if items else env
    return StoredEvent(
        event_id=event.event_id,
        source="otlp",
        type=event.type,
        name=name,
        id=event.id,
        organization_id=event.organization_id,
        user_id=event.user_id,
        session_id=event.session_id,
        trace_id=event.trace_id,
        span_id=event.span_id,
        timestamp=event.timestamp,
        received_at=received_at,
        payload=payload,
        envelope=env,
    )


def events_from_request(
    request: ExportLogsServiceRequest,
    *,
    received_at: datetime,
    traceparent: tuple[str, str] = ("", ""),
) -> OtlpResult:
    """Every commerce record of ``request`` as a record; invalid commerce records are listed as rejected."""
    result = OtlpResult()
    for rl in request.resource_logs:
        for sl in rl.scope_logs:
            for record in sl.log_records:
                try:
                    event = record_event(record, received_at=received_at, traceparent=traceparent)
                except EventValidationError as exc:
                    result.rejected.append(f"{record.event_name}: {exc}")
                    continue
                except Exception as exc:  # an input we did not foresee: refused, never a 5xx
                    result.rejected.append(f"{record.event_name}: invalid record ({type(exc).__name__}: {exc})"[:300])
                    continue
                if event is None:
                    result.ignored += 1
                else:
                    result.events.append(event)
    return result
