"""configure() and the env settings, end to end in real processes; the batch-processor exporter in process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest
from fake_collector import FakeCollector
from nats.js.client import JetStreamContext
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from streams import count, stored

from otel_commerce import CommerceLogExporter, DeliveryEngine, JetStreamSink, Settings, bootstrap
from otel_commerce._cli._natsserver import NatsServer
from otel_commerce._model._time import to_unix_ns
from otel_commerce._record import CommerceLogRecord, build_pending, envelope_body, event_attributes, flat_attributes

APP = textwrap.dedent(
    """
    import json, os
    import sys

    from opentelemetry import _logs, metrics, trace
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    import otel_commerce

    # the application's own providers, set before otel-commerce is configured
    app_logs = InMemoryLogRecordExporter()
    lp = LoggerProvider()
    lp.add_log_record_processor(SimpleLogRecordProcessor(app_logs))
    _logs.set_logger_provider(lp)
    trace.set_tracer_provider(TracerProvider())
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

    otel_commerce.configure()          # everything from the environment
    otel_commerce.configure()          # twice: still one processor, no double delivery
    tracer = trace.get_tracer("app")
    with tracer.start_as_current_span("handler") as span:
        otel_commerce.record_event("referral.claimed", organization_id="acme",
                                   data={"referrer_id": "u1", "referee_id": "u2", "referral_code": "R"})
    ok = otel_commerce.flush(20)
    names = [type(p).__name__ for p in lp._multi_log_record_processor._log_record_processors]
    points = {}
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                points[m.name] = sum(p.value for p in m.data.data_points)
    print(json.dumps({"ok": ok, "processors": names, "app_logs": len(app_logs.get_finished_logs()),
                      "trace_id": format(span.get_span_context().trace_id, "032x"), "metrics": points,
                      "stats": otel_commerce.stats()}))
    """
)


def test_configure_adds_to_existing_providers_with_env_auth_and_headers(tmp_path: Path) -> None:
    """configure() keeps the app's LoggerProvider (adds our processor once), takes NATS token auth and
    collector headers from the environment, and counts through the OTel metrics API."""
    with NatsServer(extra_args=["--auth", "s3cret"]) as server, FakeCollector() as collector:
        app = tmp_path / "app.py"
        app.write_text(APP)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PUBSUB_URL", "ANALYTICS_"))}
        env.update(
            {
                "OTEL_COMMERCE_NATS_URL": server.url,
                "OTEL_COMMERCE_NATS_TOKEN": "s3cret",
                "OTEL_COMMERCE_COLLECTOR_ENDPOINT": collector.url,
                "OTEL_COMMERCE_COLLECTOR_HEADERS": "Authorization=Bearer%20abc,X-Tenant=acme",
                "OTEL_COMMERCE_LINGER_MS": "5",
            }
        )
        proc = subprocess.run([sys.executable, str(app)], env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert collector.wait_for(1, timeout=5)
        assert collector.headers_seen[-1].get("Authorization") == "Bearer abc"
        assert collector.headers_seen[-1].get("X-Tenant") == "acme"
    assert out["ok"] is True
    assert out["processors"] == ["SimpleLogRecordProcessor", "CommerceLogRecordProcessor"]
    assert out["app_logs"] == 1  # the app's own exporter saw the commerce log record too
    assert out["metrics"].get("commerce.events.recorded") == 1
    assert out["metrics"].get("commerce.events.exported") == 2  # one per sink
    assert out["stats"]["exported"] == 2 and out["stats"]["dropped"] == 0
    assert collector.events[-1]["properties"]["trace_id"] == out["trace_id"]


def test_settings_from_env_and_bad_values() -> None:
    """Env settings parse (with Hanzo fallbacks)."""
    s = Settings.from_env(
        {
            "PUBSUB_URL": "nats://tok@h1:4222,nats://h2:4222",
            "ANALYTICS_ENDPOINT": "http://collector:8091/",
            "OTEL_COMMERCE_MODE": "BOTH",
            "OTEL_COMMERCE_NATS_USER": "u",
            "OTEL_COMMERCE_NATS_PASSWORD": "p",
            "OTEL_COMMERCE_LINGER_MS": "20",
        }
    )
    assert s.collector_endpoint == "http://collector:8091" and s.mode == "both" and s.linger_seconds == 0.02
    opts = s.nats_connect_options()
    assert opts["servers"] == ["nats://tok@h1:4222", "nats://h2:4222"] and opts["user"] == "u"
    assert Settings.from_env({"OTEL_COMMERCE_NATS_URL": "nats://a", "PUBSUB_URL": "nats://b"}).nats_url == "nats://a"
    # invalid environment values never raise: see tests/test_config_edges.py for the rules


@pytest.mark.parametrize("shape", ["attributes", "body"])
async def test_batch_log_exporter_delivers_records_with_trace_ids(
    nats_server: NatsServer, js: JetStreamContext, shape: str, uid: str
) -> None:
    """CommerceLogExporter behind the SDK's BatchLogRecordProcessor delivers our records and records
    emitted by other code in either shape (rebuilt from attributes, or from the old body), with trace/span ids."""
    await bootstrap(js)
    engine = DeliveryEngine([JetStreamSink(nats_server.url)], linger_seconds=0.005)
    lp = LoggerProvider(shutdown_on_exit=False)
    lp.add_log_record_processor(BatchLogRecordProcessor(CommerceLogExporter(engine=engine)))
    tracer = TracerProvider().get_tracer("t")
    logger = lp.get_logger("app")
    with tracer.start_as_current_span("handler") as span:
        pending = build_pending("order.created", organization_id="acme", data={"order_id": uid, "revenue": 2.0})
        assert pending.event is not None
        record = CommerceLogRecord(
            body=envelope_body(pending.event) if shape == "body" else None,
            attributes=flat_attributes(pending.event) if shape == "body" else event_attributes(pending.event),
            timestamp=to_unix_ns(pending.event.timestamp),
            event_name="commerce.order.created",
        )
        logger.emit(record)  # no pending attached: the exporter rebuilds the event from the record
        logger.emit(event_name="app.other", body="not ours")
    lp.shutdown()
    assert engine.flush(10)
    engine.shutdown(5)
    (msg,) = await stored(js, uid)  # once: the exporter delivered it, the other record is not ours
    env = orjson.loads(msg.data)
    sc = span.get_span_context()
    assert env["trace_id"] == format(sc.trace_id, "032x") and env["span_id"] == format(sc.span_id, "016x")
    assert env["event_id"] == pending.event.event_id and env["ga4"]["event_name"] == "begin_checkout"
    assert env["data"] == {"order_id": uid, "revenue": 2.0, "currency": "USD"}
    assert env["timestamp"] == pending.event.to_dict()["timestamp"]  # to the microsecond
    assert msg.subject == "commerce.order.created"


BATCH_EXIT_APP = textwrap.dedent(
    """
    import sys

    from opentelemetry import _logs
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    import otel_commerce
    from otel_commerce import CommerceLogExporter, record_event

    lp = LoggerProvider()
    lp.add_log_record_processor(BatchLogRecordProcessor(CommerceLogExporter()))
    _logs.set_logger_provider(lp)
    otel_commerce.stats()  # builds the engine now, after the provider: exit order matters
    for i in range(50):
        record_event("order.created", organization_id="acme", data={"order_id": f"o{i}-{sys.argv[1]}"})
    """
)


async def test_batch_exporter_exit_without_flush_delivers_all(
    tmp_path: Path, nats_server: NatsServer, js: JetStreamContext, uid: str
) -> None:
    """With the SDK's batch processor, records still queued at exit reach the engine before it stops."""
    app = tmp_path / "app.py"
    app.write_text(BATCH_EXIT_APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PUBSUB_URL", "ANALYTICS_"))}
    env["OTEL_COMMERCE_NATS_URL"] = nats_server.url
    proc = subprocess.run([sys.executable, str(app), uid], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert await count(js, uid) == 50


def test_entry_points_are_installed() -> None:
    """The instrumentor and the two exporters named commerce resolve to our classes; no distro or
    configurator of ours exists (opentelemetry-instrument would pick it over a vendor's by accident)."""
    from importlib.metadata import entry_points

    from otel_commerce import CommerceSpanExporter
    from otel_commerce._runtime._instrumentor import CommerceInstrumentor

    expected = {
        "opentelemetry_instrumentor": CommerceInstrumentor,
        "opentelemetry_logs_exporter": CommerceLogExporter,
        "opentelemetry_traces_exporter": CommerceSpanExporter,
    }
    for group, cls in expected.items():
        [ep] = [e for e in entry_points(group=group) if e.name == "commerce"]
        assert ep.load() is cls, group
    for group in ("opentelemetry_distro", "opentelemetry_configurator"):
        assert not [e for e in entry_points(group=group) if e.value.startswith("otel_commerce")], group
