"""Messaging spans for our own JetStream I/O (OTEL_COMMERCE_SELF_TRACING=on), in a real process against a
real nats-server: one PRODUCER ``send`` span per ≤128 messages, linked to each message's recorded context;
off by default; never delivered as commerce events; the consumer's ``process`` span continues the trace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from nats.js.client import JetStreamContext
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_commerce import consume_span
from otel_commerce._cli._natsserver import NatsServer
from otel_commerce._sinks._selftrace import send_attributes

APP = textwrap.dedent(
    """
    import json, os
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    import otel_commerce
    from otel_commerce import CommerceSpanExporter, flush, record_event

    spans = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    tp.add_span_processor(SimpleSpanProcessor(CommerceSpanExporter()))  # ours: must deliver none of them
    trace.set_tracer_provider(tp)
    tracer = trace.get_tracer("shop")
    recorded = {}
    types = os.environ["TYPES"].split(",")
    for i in range(int(os.environ["N"])):
        with tracer.start_as_current_span("handler") as span:
            record_event(types[i % len(types)], organization_id="acme", data={"order_id": f"st{i}"})
            recorded[format(span.get_span_context().span_id, "016x")] = format(span.get_span_context().trace_id, "032x")
    assert flush(30)
    out = []
    for s in spans.get_finished_spans():
        if s.kind.name != "PRODUCER":
            continue
        out.append({"name": s.name, "attrs": dict(s.attributes),
                    "links": [[format(l.context.trace_id, "032x"), format(l.context.span_id, "016x")] for l in s.links],
                    "parent": s.parent is not None, "status": s.status.status_code.name})
    print(json.dumps({"recorded": recorded, "send_spans": out}))
    """
)


def _run(tmp_path: Path, nats_url: str, n: int, types: str, *, on: bool) -> dict[str, Any]:
    app = tmp_path / "app.py"
    app.write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PUBSUB_URL", "ANALYTICS_"))}
    env.update({"OTEL_COMMERCE_NATS_URL": nats_url, "N": str(n), "TYPES": types, "OTEL_COMMERCE_LINGER_MS": "300"})
    if on:
        env["OTEL_COMMERCE_SELF_TRACING"] = "on"
    proc = subprocess.run([sys.executable, str(app)], env=env, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


async def test_send_spans_link_every_message_in_batches_of_at_most_128(
    tmp_path: Path, fresh_nats_server: NatsServer, fresh_js: JetStreamContext
) -> None:
    n = 300
    out = _run(tmp_path, fresh_nats_server.url, n, "order.refunded", on=True)
    spans = out["send_spans"]
    counts = [s["attrs"].get("messaging.batch.message_count", 1) for s in spans]
    assert sum(counts) == n and max(counts) <= 128 and len(spans) >= 3
    links = [tuple(link) for s in spans for link in s["links"]]
    assert sorted(links) == sorted((tid, sid) for sid, tid in out["recorded"].items())  # each message linked once
    for s, count in zip(spans, counts, strict=True):
        assert len(s["links"]) == count and not s["parent"] and s["status"] == "UNSET"
        assert s["attrs"]["messaging.system"] == "nats" and s["attrs"]["messaging.operation.type"] == "send"
        assert s["attrs"]["messaging.destination.name"] == "commerce.order.refunded"  # one subject per batch
        assert s["name"] == "send commerce.order.refunded"
    assert (await fresh_js.stream_info("COMMERCE")).state.messages == n  # our spans were not delivered as events


async def test_off_by_default(tmp_path: Path, fresh_nats_server: NatsServer, fresh_js: JetStreamContext) -> None:
    out = _run(tmp_path, fresh_nats_server.url, 3, "order.refunded", on=False)
    assert out["send_spans"] == []
    assert (await fresh_js.stream_info("COMMERCE")).state.messages == 3


def test_attribute_rules() -> None:
    one = send_attributes([("commerce.a", b"", {"Nats-Msg-Id": "e1"})])
    assert one == {"messaging.system": "nats", "messaging.operation.type": "send",
                   "messaging.destination.name": "commerce.a", "messaging.message.id": "e1"}  # fmt: skip
    same = send_attributes([("commerce.a", b"", {"Nats-Msg-Id": "e1"}), ("commerce.a", b"", {"Nats-Msg-Id": "e2"})])
    assert same["messaging.destination.name"] == "commerce.a" and same["messaging.batch.message_count"] == 2
    assert "messaging.message.id" not in same
    mixed = send_attributes([("commerce.a", b"", None), ("commerce.b", b"", None)])
    assert "messaging.destination.name" not in mixed and mixed["messaging.batch.message_count"] == 2


async def test_consumer_process_span_continues_the_producer_trace(
    tmp_path: Path, fresh_nats_server: NatsServer, fresh_js: JetStreamContext
) -> None:
    out = _run(tmp_path, fresh_nats_server.url, 2, "order.refunded,order.created", on=True)
    spans = out["send_spans"]
    mixed = [s for s in spans if s["attrs"].get("messaging.batch.message_count", 1) > 1]
    for s in mixed:  # two subjects in one batch: no destination name
        assert "messaging.destination.name" not in s["attrs"] and s["name"] == "send"
    singles = [s for s in spans if "messaging.batch.message_count" not in s["attrs"]]
    for s in singles:
        assert s["attrs"]["messaging.message.id"]
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    sub = await fresh_js.pull_subscribe("commerce.>", durable="selftrace", stream="COMMERCE")
    for msg in await sub.fetch(2, timeout=5):
        with consume_span(msg, tracer=tp.get_tracer("consumer")):
            pass
        await msg.ack()
    finished = exporter.get_finished_spans()
    assert len(finished) == 2
    for span in finished:
        assert span.context is not None and span.parent is not None
        assert out["recorded"][format(span.parent.span_id, "016x")] == format(span.context.trace_id, "032x")
        assert span.attributes is not None and span.attributes["messaging.operation.type"] == "process"
