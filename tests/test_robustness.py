"""Robustness: configuration typos, multi-server URLs, exit order, never-twice, PII depth, defaults."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest
from fake_collector import FakeCollector
from nats.js.client import JetStreamContext
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from streams import count

from otel_commerce import (
    CommerceLogExporter,
    CommerceLogRecordProcessor,
    DeliveryEngine,
    EventValidationError,
    JetStreamSink,
    Order,
    OrderItem,
    Settings,
    bootstrap,
    commerce_event,
    record_event,
)
from otel_commerce._cli._natsserver import NatsServer
from otel_commerce._model import collector_from_args, collector_from_event
from otel_commerce._record import CommerceLogRecord, apply_pii, build_pending, envelope_body, flat_attributes
from otel_commerce._runtime import RUNTIME
from otel_commerce.testing import CapturedEvents, capture_events


@pytest.fixture
def events() -> Iterator[CapturedEvents]:
    RUNTIME.install(Settings(), None)
    with capture_events() as captured:
        yield captured
    RUNTIME.reset()


def test_bad_environment_never_breaks_a_decorated_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    """A typo in OTEL_COMMERCE_* falls back (default mode) or disables that sink with a logged error; the
    handler still runs and returns."""
    RUNTIME.reset()
    monkeypatch.setenv("OTEL_COMMERCE_MODE", "bogus")
    monkeypatch.setenv("OTEL_COMMERCE_COLLECTOR_ENDPOINT", "127.0.0.1:9")

    @commerce_event("order.completed", organization_id="acme")
    def handler() -> dict[str, str]:
        return {"order_id": "o1"}

    try:
        assert handler() == {"order_id": "o1"}
        assert record_event("order.completed", organization_id="acme", data={"order_id": "o2"})
        # fell back to defaults (the suite's own spool environment aside): no sink, nothing sent
        assert RUNTIME.settings == Settings.from_env({k: v for k, v in os.environ.items() if "SPOOL" in k})
        assert RUNTIME.settings.mode == "log" and not RUNTIME.settings.has_sink
    finally:
        monkeypatch.delenv("OTEL_COMMERCE_MODE")
        monkeypatch.delenv("OTEL_COMMERCE_COLLECTOR_ENDPOINT")
        RUNTIME.reset()


async def test_comma_separated_nats_urls_connect(nats_server: NatsServer, js: JetStreamContext, uid: str) -> None:
    """A documented server list "nats://a,nats://b" connects (to whichever server is up)."""
    engine = DeliveryEngine([JetStreamSink(f"nats://127.0.0.1:1,{nats_server.url}")], linger_seconds=0.005)
    pending = build_pending("referral.claimed", organization_id="acme", data={"referee_id": uid})
    engine.submit(pending)
    assert engine.flush(20)
    engine.shutdown(5)
    assert await count(js, uid) == 1


async def test_exporter_before_processor_delivers_once(
    nats_server: NatsServer, js: JetStreamContext, uid: str
) -> None:
    """Batch exporter and direct processor on one provider (any order): each event is delivered once."""
    await bootstrap(js)
    engine = DeliveryEngine([JetStreamSink(nats_server.url)], linger_seconds=0.005)
    lp = LoggerProvider(shutdown_on_exit=False)
    lp.add_log_record_processor(BatchLogRecordProcessor(CommerceLogExporter(engine=engine)))
    lp.add_log_record_processor(CommerceLogRecordProcessor(engine=engine))
    for i in range(3):
        pending = build_pending("order.refunded", organization_id="acme", data={"order_id": f"o{i}-{uid}"})
        assert pending.event is not None
        record = CommerceLogRecord(
            body=envelope_body(pending.event),
            attributes=flat_attributes(pending.event),
            event_name="commerce.order.refunded",
        )
        record.commerce_pending = pending
        lp.get_logger("t").emit(record)
    lp.shutdown()
    assert engine.flush(10)
    stats = engine.stats()
    engine.shutdown(5)
    assert stats["submitted"] == 3  # refunds repeat: a second submission would be a second message
    assert await count(js, uid) == 3


EXIT_APP = textwrap.dedent(
    """
    from opentelemetry import _logs
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    lp = LoggerProvider()                      # created BEFORE otel_commerce is imported
    _logs.set_logger_provider(lp)
    import otel_commerce
    from otel_commerce import CommerceLogExporter, record_event

    lp.add_log_record_processor(BatchLogRecordProcessor(CommerceLogExporter()))
    otel_commerce.stats()
    for i in range(40):
        record_event("order.created", organization_id="acme", data={"order_id": f"o{i}"})
    """
)


def test_exit_delivers_when_the_provider_predates_the_import(tmp_path: Path) -> None:
    """At exit the SDK providers are flushed into the engine before it stops, whatever the import order."""
    app = tmp_path / "app.py"
    app.write_text(EXIT_APP)
    with FakeCollector() as collector:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PUBSUB_URL", "ANALYTICS_"))}
        env["OTEL_COMMERCE_COLLECTOR_ENDPOINT"] = collector.url
        proc = subprocess.run([sys.executable, str(app)], env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert collector.wait_for(40, timeout=10)
        assert len(set(collector.event_ids())) == 40


def test_otel_path_collector_payload_has_go_order_fields() -> None:
    """An order recorded through OTel reaches the collector with Go's quantity, items string and item_count."""
    order = Order(
        id="o1", user_id="u1", email="a@b.c", total=12.5, currency="USD", status="paid", org_id="acme",
        items=[OrderItem("p1", "Tee", "S1", 2, 5.0), OrderItem("p2", "Cap", "S2", 1, 2.5)],
    )  # fmt: skip
    pending = build_pending("order.completed", order=order)
    assert pending.event is not None
    ours = collector_from_event(pending.event, pending.items)
    go, _, _ = collector_from_args("order.completed", {"order": order})  # exactly what Client.emit_order_completed sends
    assert go is not None
    assert ours["quantity"] == go["quantity"] == 3
    assert ours["properties"]["items"] == go["properties"]["items"]
    assert ours["properties"]["item_count"] == go["properties"]["item_count"] == 2
    assert ours["revenue"] == go["revenue"] == 12.5 and ours["order_id"] == "o1"


def test_catalog_currency_defaults_to_usd(events: CapturedEvents) -> None:
    """Like Go, a catalog event with money but no currency is in USD (GA4 needs a currency with a value)."""
    record_event("order.completed", organization_id="acme", data={"order_id": "o2", "revenue": 10.0})
    [ev] = events
    assert ev.data["currency"] == "USD"
    assert ev.ga4 is not None and ev.ga4.currency == "USD"
    assert ev.facebook_capi is not None and ev.facebook_capi.custom_data == {
        "currency": "USD",
        "value": 10.0,
        "order_id": "o2",
    }


def test_pii_reaches_into_lists() -> None:
    """The PII policy applies inside lists of mappings too."""
    out = apply_pii({"customers": [{"email": "A@b.com", "phone": "+1 555"}], "n": [1, 2]}, "hash")
    assert "A@b.com" not in orjson.dumps(out).decode() and "+1 555" not in orjson.dumps(out).decode()
    assert out["n"] == [1, 2]
    assert apply_pii({"customers": [{"email": "x@y.z"}]}, "drop") == {"customers": [{}]}


def test_non_string_data_key_is_a_validation_error(events: CapturedEvents) -> None:
    """A non-string key in data raises EventValidationError (not AttributeError) from record_event."""
    with pytest.raises(EventValidationError, match="non-string key"):
        record_event("order.completed", organization_id="acme", id="o3", data={1: "x"})  # type: ignore[dict-item]


def test_naive_timestamp_means_utc_everywhere(events: CapturedEvents) -> None:
    """A naive timestamp= is UTC in the envelope and in the CAPI event_time alike."""
    record_event("order.completed", organization_id="acme", id="o4", timestamp=datetime(2026, 1, 1, 12))
    [ev] = events
    assert ev.timestamp == datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    assert ev.facebook_capi is not None and ev.facebook_capi.event_time == int(ev.timestamp.timestamp())
