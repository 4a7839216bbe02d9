"""The collector's OTLP/HTTP logs route, fed by the real SDK + OTLPLogExporter, and by hand-made OTLP/JSON."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from collector_server import CollectorServer, running_collector
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider

from otel_commerce.collector import EventStore

ORDER_BODY: dict[str, Any] = {
    "id": "ord-9",
    "type": "order.completed",
    "timestamp": "2025-03-01T10:00:00.123Z",
    "organization_id": "org-1",
    "user_id": "user-9",
    "data": {"order_id": "ord-9", "revenue": 40.0, "currency": "EUR", "email": "b@example.com"},
    "event_id": "2b0c4a7e-3f2d-5e8a-9b1c-0d2e3f4a5b6c",
    "items": [{"product_id": "p1", "product_name": "Mug", "sku": "M1", "quantity": 2, "price": 20.0}],
}


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[tuple[CollectorServer, EventStore]]:
    with running_collector(tmp_path / "otlp.db", auth_token="tok") as pair:
        yield pair


def sdk_logger(url: str, **exporter_options: Any) -> tuple[LoggerProvider, Any]:
    exporter = OTLPLogExporter(endpoint=url + "/v1/logs", headers={"Authorization": "Bearer tok"}, **exporter_options)
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    return provider, provider.get_logger("shop")


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_sdk_exporter_record_in_span_becomes_event(
    collector: tuple[CollectorServer, EventStore], compression: Compression
) -> None:
    """A commerce.* record emitted in a real span and shipped by OTLPLogExporter is stored with that span's ids."""
    server, store = collector
    provider, logger = sdk_logger(server.url, compression=compression)
    tracer = TracerProvider().get_tracer("shop")
    try:
        with tracer.start_as_current_span("POST /checkout") as span:
            logger.emit(
                event_name="commerce.order.completed",
                body=ORDER_BODY,
                timestamp=time.time_ns(),
                attributes={"commerce.event_id": ORDER_BODY["event_id"], "commerce.revenue": 40.0},
            )
            logger.emit(body="an ordinary application log line")  # accepted and ignored
            ctx = span.get_span_context()
        assert provider.force_flush(10_000)
    finally:
        provider.shutdown()
    [event] = store.query()
    assert event.source == "otlp" and event.name == "commerce.order.completed"
    assert event.trace_id == format(ctx.trace_id, "032x")
    assert event.span_id == format(ctx.span_id, "016x")
    assert (event.event_id, event.type, event.id, event.user_id) == (
        ORDER_BODY["event_id"],
        "order.completed",
        "ord-9",
        "user-9",
    )
    env = event.envelope
    assert env["timestamp"] == "2025-03-01T10:00:00.123Z" and env["data"]["revenue"] == 40.0
    assert env["ga4"]["event_name"] == "purchase" and env["ga4"]["items"][0]["item_id"] == "p1"
    assert env["facebook_capi"]["event_name"] == "Purchase"
    assert env["trace_id"] == event.trace_id


def test_retried_records_are_stored_once(collector: tuple[CollectorServer, EventStore]) -> None:
    """Records re-sent with the same event_id (an exporter retry, a re-emitted event) become one event."""
    server, store = collector
    provider, logger = sdk_logger(server.url)
    try:
        for _ in range(3):
            logger.emit(event_name="commerce.order.completed", body=ORDER_BODY)
        assert provider.force_flush(10_000)
    finally:
        provider.shutdown()
    assert store.count() == 1


def test_attributes_fallback_when_body_is_not_a_map(collector: tuple[CollectorServer, EventStore]) -> None:
    """A commerce record whose body is a string is built from its flat commerce.* attributes."""
    server, store = collector
    provider, logger = sdk_logger(server.url)
    tracer = TracerProvider().get_tracer("shop")
    try:
        with tracer.start_as_current_span("refund") as span:
            logger.emit(
                event_name="commerce.order.refunded",
                body="order ord-7 refunded",
                attributes={
                    "commerce.event_id": "ev-7",
                    "commerce.id": "ord-7",
                    "commerce.organization_id": "org-2",
                    "commerce.revenue": 5.5,
                    "commerce.currency": "USD",
                },
            )
            trace_id = format(span.get_span_context().trace_id, "032x")
        assert provider.force_flush(10_000)
    finally:
        provider.shutdown()
    [event] = store.query(trace_id=trace_id)
    assert (event.event_id, event.type, event.id, event.organization_id) == ("ev-7", "order.refunded", "ord-7", "org-2")
    assert event.envelope["data"] == {"revenue": 5.5, "currency": "USD"}


def otlp_json(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceLogs": [{"resource": {}, "scopeLogs": [{"scope": {"name": "t"}, "logRecords": records}]}]}


def test_otlp_json_with_hex_ids_and_anyvalue_wrappers(collector: tuple[CollectorServer, EventStore]) -> None:
    """OTLP/JSON (hex traceId/spanId, kvlistValue body, intValue as a string) is decoded like protobuf."""
    server, store = collector
    record = {
        "timeUnixNano": "1740823200000000000",
        "eventName": "commerce.referral.tier_upgraded",
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "body": {
            "kvlistValue": {
                "values": [
                    {"key": "id", "value": {"stringValue": "tier-u1-1"}},
                    {"key": "type", "value": {"stringValue": "referral.tier_upgraded"}},
                    {"key": "organization_id", "value": {"stringValue": "org-3"}},
                    {"key": "event_id", "value": {"stringValue": "ev-json"}},
                    {
                        "key": "data",
                        "value": {
                            "kvlistValue": {
                                "values": [
                                    {"key": "new_tier", "value": {"stringValue": "gold"}},
                                    {"key": "referral_count", "value": {"intValue": "12"}},
                                ]
                            }
                        },
                    },
                ]
            }
        },
    }
    other = {"timeUnixNano": "1740823200000000000", "body": {"stringValue": "GET /health"}}
    r = httpx.post(server.url + "/v1/logs", json=otlp_json([record, other]), headers={"Authorization": "Bearer tok"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    [event] = store.query()
    assert (event.trace_id, event.span_id) == ("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174")
    assert event.envelope["data"] == {"new_tier": "gold", "referral_count": 12}
    assert event.envelope["timestamp"] == "2025-03-01T10:00:00Z"


def test_invalid_commerce_record_is_a_partial_success(collector: tuple[CollectorServer, EventStore]) -> None:
    """A bad commerce record is refused through OTLP partial_success while the good one in the request is stored."""
    server, store = collector
    good = {
        "eventName": "commerce.product.viewed",
        "timeUnixNano": "1740823200000000000",
        "attributes": [{"key": "commerce.event_id", "value": {"stringValue": "ev-ok"}}],
    }
    bad = {
        "eventName": "commerce.order.completed",
        "body": {"kvlistValue": {"values": [{"key": "timestamp", "value": {"stringValue": "not a time"}}]}},
    }
    r = httpx.post(server.url + "/v1/logs", json=otlp_json([good, bad]), headers={"Authorization": "Bearer tok"})
    assert r.status_code == 200
    assert r.json()["partialSuccess"]["rejectedLogRecords"] == "1"
    assert [e.event_id for e in store.query()] == ["ev-ok"]


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"\xff\xff\xff garbage", "application/x-protobuf", 400),
        (b"{broken", "application/json", 400),
        (b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "zz"}]}]}]}', "application/json", 400),
        (b"whatever", "text/plain", 415),
    ],
)
def test_malformed_otlp_is_refused(
    collector: tuple[CollectorServer, EventStore], content: bytes, content_type: str, status: int
) -> None:
    """Undecodable protobuf or JSON, bad hex ids and unknown content types get a 4xx JSON error, nothing stored."""
    server, store = collector
    r = httpx.post(
        server.url + "/v1/logs", content=content, headers={"content-type": content_type, "Authorization": "Bearer tok"}
    )
    assert r.status_code == status
    assert r.json()["error"]
    assert store.count() == 0


def test_protobuf_response_is_an_export_response(collector: tuple[CollectorServer, EventStore]) -> None:
    """A protobuf request is answered with a protobuf ExportLogsServiceResponse (what OTLP exporters expect)."""
    server, _ = collector
    r = httpx.post(
        server.url + "/v1/logs",
        content=b"",
        headers={"content-type": "application/x-protobuf", "Authorization": "Bearer tok"},
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    assert not ExportLogsServiceResponse.FromString(r.content).HasField("partial_success")
