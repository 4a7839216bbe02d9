"""The OTel event shape in real processes: attributes on the OTLP wire, the body option, length limits
that never truncate delivered data, and the two "disabled" switches."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from nats.js.client import JetStreamContext
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from streams import stored

from otel_commerce._cli._natsserver import NatsServer
from otel_commerce._otel import pending_from_body
from otel_commerce._scope import SCHEMA_URL

ITEM_NAME = "A forty character item name, complete!!!"  # 40 characters

APP = textwrap.dedent(
    """
    import json, os, threading
    from opentelemetry import _logs
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    import otel_commerce
    from otel_commerce import Order, OrderItem

    lp = LoggerProvider()
    mem = InMemoryLogRecordExporter()  # a foreign exporter: what any log backend would get
    lp.add_log_record_processor(SimpleLogRecordProcessor(mem))
    if os.environ.get("RECEIVER"):
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        lp.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=os.environ["RECEIVER"])))
    _logs.set_logger_provider(lp)
    otel_commerce.configure(logger_provider=lp)
    order = Order(id=os.environ["OID"], org_id="acme", user_id="u1", total=12.5, currency="USD",
                  items=[OrderItem("p1", os.environ["ITEM_NAME"], "SKU-1", 2, 6.25)])
    event_id = otel_commerce.record_event("order.completed", order=order)
    ok = otel_commerce.flush(20)
    seen = [dict(r.log_record.attributes or {}) for r in mem.get_finished_logs()]
    items = [list(a.get("commerce.items") or []) for a in seen]
    print(json.dumps({"event_id": event_id, "flushed": ok, "records": len(seen),
                      "item_names_seen": [dict(i[0])["product_name"] for i in items if i],
                      "threads": sorted(t.name for t in threading.enumerate()),
                      "stats": otel_commerce.stats()}), flush=True)
    """
)


def _run(tmp_path: Path, env: dict[str, str]) -> tuple[dict[str, Any], str]:
    app = tmp_path / "app.py"
    app.write_text(APP)
    full = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PUBSUB_URL", "ANALYTICS_"))}
    full.update({"ITEM_NAME": ITEM_NAME, "OTEL_COMMERCE_LINGER_MS": "5", **env})
    proc = subprocess.run([sys.executable, str(app)], env=full, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [line] = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    return line, proc.stderr


class _Receiver:
    """A bare OTLP/HTTP logs receiver on 127.0.0.1: keeps every request body as it came over the wire."""

    def __init__(self) -> None:
        bodies = self.bodies = []  # type: list[bytes]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                out = ExportLogsServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/logs"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def records(self) -> list[tuple[LogRecord, str]]:
        out = []
        for raw in self.bodies:
            req = ExportLogsServiceRequest.FromString(raw)
            for rl in req.resource_logs:
                for sl in rl.scope_logs:
                    out.extend((r, sl.schema_url) for r in sl.log_records if r.event_name.startswith("commerce."))
        return out


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    r = _Receiver()
    r.thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


async def _stream_event(js: JetStreamContext, oid: str) -> tuple[dict[str, Any], dict[str, str]]:
    info = await js.stream_info("COMMERCE")
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg("COMMERCE", seq)
        env = orjson.loads(msg.data)
        if env["id"] == oid:
            return env, dict(msg.headers or {})
    raise AssertionError(f"{oid} not in COMMERCE")


@pytest.mark.parametrize("body", ["none", "envelope"])
async def test_attribute_shape_on_the_otlp_wire(
    tmp_path: Path, nats_server: NatsServer, js: JetStreamContext, receiver: _Receiver, body: str, uid: str
) -> None:
    """An OTLP/HTTP exporter beside ours sends event_name, INFO, µs timestamp, kvlist/array attributes;
    the body only with OTEL_COMMERCE_LOG_BODY=envelope. The stream gets the envelope either way."""
    oid = f"{uid}-shape-{body}"
    env = {"OTEL_COMMERCE_NATS_URL": nats_server.url, "RECEIVER": receiver.url, "OID": oid}
    if body == "envelope":
        env["OTEL_COMMERCE_LOG_BODY"] = "envelope"
    out, _ = _run(tmp_path, env)
    [(rec, schema_url)] = receiver.records()
    assert schema_url == SCHEMA_URL
    assert rec.event_name == "commerce.order.completed" and rec.severity_number == 9  # SEVERITY_NUMBER_INFO
    attrs = {kv.key: kv.value for kv in rec.attributes}
    assert attrs["commerce.event_id"].string_value == out["event_id"]
    assert attrs["commerce.id"].string_value == oid and attrs["commerce.organization_id"].string_value == "acme"
    assert attrs["commerce.revenue"].double_value == 12.5 and attrs["commerce.currency"].string_value == "USD"
    assert attrs["commerce.data"].WhichOneof("value") == "kvlist_value"
    data = {kv.key: kv.value for kv in attrs["commerce.data"].kvlist_value.values}
    assert data["order_id"].string_value == oid and data["revenue"].double_value == 12.5
    assert attrs["commerce.items"].WhichOneof("value") == "array_value"
    [item] = attrs["commerce.items"].array_value.values
    assert {kv.key: kv.value for kv in item.kvlist_value.values}["product_name"].string_value == ITEM_NAME
    if body == "envelope":
        assert rec.body.WhichOneof("value") == "kvlist_value"
        assert {kv.key for kv in rec.body.kvlist_value.values} >= {"id", "type", "timestamp", "data", "event_id"}
    else:
        assert rec.body.WhichOneof("value") is None
    envelope, headers = await _stream_event(js, oid)
    assert headers["Nats-Msg-Id"] == out["event_id"] == envelope["event_id"]
    # the record's time is the envelope's timestamp to the microsecond
    ts = envelope["timestamp"]
    frac = ts[20:-1] if "." in ts else ""
    assert rec.time_unix_nano % 1_000_000_000 == int(frac.ljust(9, "0") or "0")


async def test_length_limit_never_truncates_what_is_delivered(
    tmp_path: Path, nats_server: NatsServer, js: JetStreamContext, uid: str
) -> None:
    """OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT=16: other exporters see the name cut, the stream has it whole."""
    oid = f"{uid}-shape-limit"
    out, _ = _run(
        tmp_path,
        {"OTEL_COMMERCE_NATS_URL": nats_server.url, "OID": oid, "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT": "16"},
    )
    assert out["item_names_seen"] == [ITEM_NAME[:16]]  # the SDK truncated the record (the limit is real)
    envelope, _ = await _stream_event(js, oid)
    assert [i["item_name"] for i in envelope["ga4"]["items"]] == [ITEM_NAME]


def test_rebuilding_from_a_record_warns_once_when_a_limit_is_set(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Paths that must read a record back (batch exporter, no claim) read the attribute shape and warn."""
    import otel_commerce._otel._adapters as otel_mod

    monkeypatch.setattr(otel_mod, "_limit_warned", False)
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "16")
    attrs = {
        "commerce.event_id": "e-1",
        "commerce.id": "o1",
        "commerce.type": "order.completed",
        "commerce.organization_id": "acme",
        "commerce.user_id": "u1",
        "commerce.revenue": 2.0,
        "commerce.data": {"order_id": "o1", "revenue": 2.0, "currency": "USD"},
        "commerce.items": ({"product_id": "p1", "product_name": "N", "sku": "S", "quantity": 1, "price": 2.0},),
    }
    with caplog.at_level(logging.WARNING, logger="otel_commerce"):
        for _ in range(3):
            p = pending_from_body("commerce.order.completed", None, attrs, "", "", 1, 1_700_000_000_123_456_000)
    assert sum("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT=16" in r.getMessage() for r in caplog.records) == 1
    assert p.event is not None and p.event.data == {"order_id": "o1", "revenue": 2.0, "currency": "USD"}
    assert (p.event.id, p.event.user_id, p.event.event_id) == ("o1", "u1", "e-1")
    assert [i.product_id for i in p.items] == ["p1"]
    assert p.event.timestamp.microsecond == 123456  # exact, no float rounding


async def test_commerce_disabled_is_a_counted_noop_without_thread(
    tmp_path: Path, nats_server: NatsServer, js: JetStreamContext, uid: str
) -> None:
    """OTEL_COMMERCE_DISABLED=true: no record, no delivery, no delivery thread, one WARNING."""
    out, stderr = _run(
        tmp_path, {"OTEL_COMMERCE_NATS_URL": nats_server.url, "OID": f"{uid}-off", "OTEL_COMMERCE_DISABLED": "true"}
    )
    assert out["records"] == 0 and out["stats"]["noop"] >= 1 and out["stats"]["recorded"] == 0
    # SDK 1.45.0's resource detection may leave its own ThreadPoolExecutor worker briefly (not ours)
    assert [t for t in out["threads"] if not t.startswith("ThreadPoolExecutor-")] == ["MainThread"]
    assert stderr.count("OTEL_COMMERCE_DISABLED=true") == 1
    assert await stored(js, uid) == []  # nothing was delivered


async def test_sdk_disabled_still_delivers_business_events_directly(
    tmp_path: Path, nats_server: NatsServer, js: JetStreamContext, uid: str
) -> None:
    """OTEL_SDK_DISABLED=true: no OTel record of ours reaches any exporter, the order stream still gets it."""
    out, stderr = _run(
        tmp_path, {"OTEL_COMMERCE_NATS_URL": nats_server.url, "OID": f"{uid}-sdk-off", "OTEL_SDK_DISABLED": "true"}
    )
    assert out["records"] == 0 and out["flushed"]
    assert stderr.count("OTEL_SDK_DISABLED=true") == 1
    _, headers = await _stream_event(js, f"{uid}-sdk-off")
    assert headers["Nats-Msg-Id"] == out["event_id"]
