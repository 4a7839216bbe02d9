"""End to end: apps run as real processes (opentelemetry-instrument, plain python, fork), events land in a
real nats-server's COMMERCE stream and a real HTTP collector with the handler's trace ids."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path
from typing import Any

import orjson
from collector_server import running_collector
from fake_collector import FakeCollector
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from opentelemetry.sdk.trace import TracerProvider
from streams import stored

from otel_commerce import bootstrap, consume_span
from otel_commerce._cli._natsserver import NatsServer

# beside this Python, else on PATH (a venv made with --system-site-packages has no script of its own)
INSTRUMENT = (
    shutil.which("opentelemetry-instrument", path=sysconfig.get_path("scripts"))
    or shutil.which("opentelemetry-instrument")
    or str(Path(sysconfig.get_path("scripts")) / "opentelemetry-instrument")
)

APP = textwrap.dedent(
    """
    import json, os, sys
    from opentelemetry import trace
    from otel_commerce import Order, commerce_event, record_event

    N = int(os.environ.get("APP_EVENTS", "5"))
    UID = os.environ["APP_UID"]  # the test's id prefix
    tracer = trace.get_tracer("shop")

    @commerce_event("order.completed", organization_id="acme")
    def complete(i):
        sc = trace.get_current_span().get_span_context()
        print(json.dumps({"order": f"{UID}-o{i}", "trace_id": format(sc.trace_id, "032x"),
                          "span_id": format(sc.span_id, "016x")}), flush=True)
        return Order(id=f"{UID}-o{i}", user_id="u1", email="buyer@example.com", total=10.0 + i, currency="USD")

    def run(start, count):
        for i in range(start, start + count):
            with tracer.start_as_current_span(f"POST /orders/{i}"):
                complete(i)

    if os.environ.get("APP_FORK"):
        run(0, 1)  # the parent records one event before forking, so its engine is running
        pid = os.fork()
        if pid == 0:
            run(1, N - 1)
            from otel_commerce import flush
            flush(20)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
    else:
        run(0, N)
    from otel_commerce import stats
    print("STATS " + json.dumps(stats()), flush=True)
    # no flush, no shutdown: exit must still deliver everything
    """
)


def _run(
    tmp_path: Path,
    env: dict[str, str],
    uid: str,
    *,
    instrument: bool,
    events: int = 5,
    fork: bool = False,
    stats: dict[str, int] | None = None,
) -> dict[str, dict[str, str]]:
    app = tmp_path / "app.py"
    app.write_text(APP)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PUBSUB_URL", "ANALYTICS_"))}
    full_env.update(env)
    full_env["APP_EVENTS"] = str(events)
    full_env["APP_UID"] = uid
    if fork:
        full_env["APP_FORK"] = "1"
    cmd = [INSTRUMENT, sys.executable, str(app)] if instrument else [sys.executable, str(app)]
    proc = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if stats is not None:
        stats.update(json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("STATS "))[6:]))
    return {line["order"]: line for line in lines}


async def _stream(js: JetStreamContext, uid: str, expected: int) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """This test's envelopes and headers in COMMERCE; there must be exactly ``expected`` of them."""
    msgs = await stored(js, uid)
    assert len(msgs) == expected
    return [(orjson.loads(msg.data), dict(msg.headers or {})) for msg in msgs]


def _zero_code_env(nats_url: str, collector_url: str, logs_exporter: str = "none") -> dict[str, str]:
    """No OTEL_PYTHON_*: the official opentelemetry-distro and its configurator, and our instrumentor."""
    return {
        "OTEL_LOGS_EXPORTER": logs_exporter,
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "shop",
        "OTEL_COMMERCE_NATS_URL": nats_url,
        "OTEL_COMMERCE_COLLECTOR_ENDPOINT": collector_url,
        "OTEL_COMMERCE_LINGER_MS": "5",
    }


async def test_zero_code_instrument_delivers_with_handler_trace_ids(
    tmp_path: Path, nats_server: NatsServer, js: JetStreamContext, uid: str
) -> None:
    """opentelemetry-instrument + env vars only: every event in COMMERCE and the collector, with the
    handler span's trace/span ids and traceparent, although the app exits without flushing."""
    with FakeCollector() as collector:
        printed = _run(tmp_path, _zero_code_env(nats_server.url, collector.url), uid, instrument=True)
        assert collector.wait_for(5, timeout=10)
        by_order = {e["order_id"]: e for e in collector.events}
    assert len(printed) == 5
    msgs = await _stream(js, uid, 5)
    for env, headers in msgs:
        want = printed[env["id"]]
        assert env["type"] == "order.completed" and env["organization_id"] == "acme"
        assert (env["trace_id"], env["span_id"]) == (want["trace_id"], want["span_id"])
        assert headers["Nats-Msg-Id"] == env["event_id"]
        assert headers["traceparent"].startswith(f"00-{want['trace_id']}-{want['span_id']}-")
        assert env["ga4"]["event_name"] == "purchase" and env["facebook_capi"]["event_name"] == "Purchase"
        assert env["data"]["email"] != "buyer@example.com"  # PII hashed by default on the OTel path
        props = by_order[env["id"]]["properties"]
        assert (props["trace_id"], props["span_id"], props["event_id"]) == (
            want["trace_id"],
            want["span_id"],
            env["event_id"],
        )


async def test_otlp_and_commerce_both_get_records_and_stream_gets_each_once(
    tmp_path: Path, nats_server: NatsServer, js: JetStreamContext, uid: str
) -> None:
    """OTEL_LOGS_EXPORTER=otlp,commerce: OTLP logs reach an OTLP endpoint untouched and COMMERCE gets each event once."""
    with running_collector(tmp_path / "otlp.db") as (otlp_server, store), FakeCollector() as collector:
        env = _zero_code_env(nats_server.url, collector.url, logs_exporter="otlp,commerce")
        env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
        env["OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"] = f"{otlp_server.url}/v1/logs"
        printed = _run(tmp_path, env, uid, instrument=True, events=4)
        assert collector.wait_for(4, timeout=10)
        otlp_events = store.query(limit=100)
    msgs = await _stream(js, uid, 4)
    assert sorted(e["id"] for e, _ in msgs) == sorted(printed)
    assert len(otlp_events) == 4 and {e.source for e in otlp_events} == {"otlp"}
    for otlp_event in otlp_events:
        assert otlp_event.trace_id == printed[otlp_event.id]["trace_id"]
    assert len(collector.events) == 4


async def test_plain_python_without_sdk_delivers_directly(
    tmp_path: Path, nats_server: NatsServer, js: JetStreamContext, uid: str
) -> None:
    """No OTel SDK at all: record_event hands events to the engine directly and they all land."""
    env = {"OTEL_COMMERCE_NATS_URL": nats_server.url, "OTEL_COMMERCE_LINGER_MS": "5"}
    printed = _run(tmp_path, env, uid, instrument=False, events=3)
    msgs = await _stream(js, uid, 3)
    assert sorted(e["id"] for e, _ in msgs) == sorted(printed)
    assert all("trace_id" not in e for e, _ in msgs)  # no SDK: no valid span, no trace ids


async def test_forked_worker_delivers_its_events(
    tmp_path: Path, nats_server: NatsServer, js: JetStreamContext, uid: str
) -> None:
    """A worker forked after the engine started (gunicorn preload) delivers its own events; none twice."""
    printed = _run(tmp_path, _zero_code_env(nats_server.url, ""), uid, instrument=True, events=4, fork=True)
    msgs = await _stream(js, uid, 4)
    assert sorted(e["id"] for e, _ in msgs) == sorted(printed) == [f"{uid}-o{i}" for i in range(4)]
    for env, _ in msgs:
        assert env["trace_id"] == printed[env["id"]]["trace_id"]


async def test_consumer_continues_the_trace(
    tmp_path: Path, nats_server: NatsServer, js: JetStreamContext, uid: str
) -> None:
    """A COMMERCE consumer's CONSUMER span continues the producer's trace (same trace id, linked)."""
    await bootstrap(js)
    sub = await js.pull_subscribe(  # created first and delivering only new messages: sees this test's event
        "commerce.>",
        durable="test-consumer",
        stream="COMMERCE",
        config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW),
    )
    printed = _run(tmp_path, _zero_code_env(nats_server.url, ""), uid, instrument=True, events=1)
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    [msg] = await sub.fetch(1, timeout=5)
    with consume_span(msg, tracer=tp.get_tracer("consumer")) as span:
        assert span.is_recording()
    await msg.ack()
    [finished] = spans.get_finished_spans()
    want = printed[f"{uid}-o0"]
    assert finished.context is not None and format(finished.context.trace_id, "032x") == want["trace_id"]
    assert finished.parent is not None and format(finished.parent.span_id, "016x") == want["span_id"]
    assert [format(link.context.span_id, "016x") for link in finished.links] == [want["span_id"]]
    attrs = dict(finished.attributes or {})
    assert attrs["messaging.system"] == "nats" and attrs["messaging.operation.type"] == "process"
    assert attrs["messaging.destination.name"] == "commerce.order.completed"
    assert attrs["messaging.message.id"] == orjson.loads(msg.data)["event_id"]
    assert finished.kind.name == "CONSUMER"


PROBE = textwrap.dedent(
    """
    import json, os
    from importlib.metadata import entry_points
    from opentelemetry import _logs
    from otel_commerce._otel._sdk import log_processors
    import otel_commerce

    print(json.dumps({
        "processors": [type(p).__name__ for p in log_processors(_logs.get_logger_provider())],
        "distros": sorted(e.value for e in entry_points(group="opentelemetry_distro")),
        "configurators": sorted(e.value for e in entry_points(group="opentelemetry_configurator")),
        "otlp_protocol": os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL"),  # the official distro's default
        "fallback": otel_commerce.stats()["fallback"],
    }), flush=True)
    """
)


def _probe(tmp_path: Path, env: dict[str, str]) -> dict[str, Any]:
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    full_env.update(env)
    proc = subprocess.run([INSTRUMENT, sys.executable, str(script)], env=full_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


async def test_official_distro_and_configurator_are_used_and_ours_added(tmp_path: Path) -> None:
    """No OTEL_PYTHON_*: opentelemetry-instrument picks the official distro and configurator (we ship
    neither), they build the log pipeline, and the commerce instrumentor adds our processor behind theirs."""
    env = _zero_code_env("", "", "console")
    out = _probe(tmp_path, env)
    assert out["distros"] == ["opentelemetry.distro:OpenTelemetryDistro"]
    assert out["configurators"] == ["opentelemetry.distro:OpenTelemetryConfigurator"]
    assert out["otlp_protocol"] == "grpc"  # set by OpenTelemetryDistro._configure: the official distro ran
    assert out["processors"] == ["BatchLogRecordProcessor", "CommerceLogRecordProcessor"]


async def test_disabled_instrumentation_is_honoured(tmp_path: Path) -> None:
    """OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=commerce: our processor is not added."""
    env = _zero_code_env("", "", "console")
    env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = "flask, commerce"
    assert _probe(tmp_path, env)["processors"] == ["BatchLogRecordProcessor"]


async def test_instrumentor_beside_official_distro_with_otlp_logs(
    tmp_path: Path, nats_server: NatsServer, js: JetStreamContext, uid: str
) -> None:
    """The acceptance path: official distro, stock configurator, OTEL_LOGS_EXPORTER=otlp to a local OTLP/HTTP
    receiver, no OTEL_PYTHON_*: every event once in COMMERCE with its trace ids, and OTLP still gets its records."""
    with running_collector(tmp_path / "otlp.db") as (otlp_server, store), FakeCollector() as collector:
        env = _zero_code_env(nats_server.url, collector.url, logs_exporter="otlp")
        env["OTEL_EXPORTER_OTLP_LOGS_PROTOCOL"] = "http/protobuf"
        env["OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"] = f"{otlp_server.url}/v1/logs"
        stats: dict[str, int] = {}
        printed = _run(tmp_path, env, uid, instrument=True, events=6, stats=stats)
        assert collector.wait_for(6, timeout=10)
        otlp_events = store.query(limit=100)
    msgs = await _stream(js, uid, 6)
    assert sorted(e["id"] for e, _ in msgs) == sorted(printed)
    for env_, headers in msgs:
        want = printed[env_["id"]]
        assert (env_["trace_id"], env_["span_id"]) == (want["trace_id"], want["span_id"])
        assert headers["traceparent"].startswith(f"00-{want['trace_id']}-{want['span_id']}-")
    assert len(otlp_events) == 6 and {e.source for e in otlp_events} == {"otlp"}
    for ev in otlp_events:
        assert ev.trace_id == printed[ev.id]["trace_id"]
    assert len(collector.events) == 6
    assert stats["recorded"] == 6 and stats["fallback"] == 0  # taken by the processor the instrumentor added
