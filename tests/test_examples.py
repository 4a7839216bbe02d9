"""The examples as users run them: real servers (uvicorn under opentelemetry-instrument, Flask's server), real
HTTP requests, a real nats-server and the real otel-commerce collector; and the consumer as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from collector_server import running_collector
from nats.js.client import JetStreamContext
from opentelemetry.sdk.trace import TracerProvider
from streams import stored as stored_messages

from otel_commerce import Publisher, bootstrap
from otel_commerce._cli._natsserver import NatsServer, free_port
from otel_commerce.collector import EventStore

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# beside this Python, else on PATH (a venv made with --system-site-packages has no script of its own)
INSTRUMENT = (
    shutil.which("opentelemetry-instrument", path=sysconfig.get_path("scripts"))
    or shutil.which("opentelemetry-instrument")
    or str(Path(sysconfig.get_path("scripts")) / "opentelemetry-instrument")
)
INCOMING_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING_SPAN = "00f067aa0ba902b7"
EXPECTED_TYPES = {
    "checkout.started",
    "checkout.failed",
    "order.created",
    "order.completed",
    "order.refunded",
    "referral.claimed",
}


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PUBSUB_URL", "ANALYTICS_"))}
    env.update(extra)
    return env


@contextlib.contextmanager
def serving(cmd: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    """Run a server subprocess until ``/health`` answers; on exit SIGTERM it and require a clean exit."""
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            ready = False
            while not ready and time.monotonic() < deadline:
                assert proc.poll() is None, f"server exited: {log.read_text()[-3000:]}"
                try:
                    ready = httpx.get(url + "/health", timeout=1).status_code == 200
                except httpx.HTTPError:
                    time.sleep(0.05)  # polling interval of the deadline-bounded readiness check
            assert ready, f"server not ready in 30s: {log.read_text()[-3000:]}"
            yield url
            proc.send_signal(signal.SIGTERM)
            # uvicorn re-raises SIGTERM after its graceful shutdown; the Flask example exits with 0
            assert proc.wait(timeout=15) in (0, -signal.SIGTERM), log.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def _ids(response: httpx.Response) -> tuple[str, str]:
    """(trace_id, span_id) of the request span, from the ``traceresponse`` header the shops send."""
    _, trace_id, span_id, _ = response.headers["traceresponse"].split("-")
    return trace_id, span_id


def shop_traffic(url: str, uid: str) -> dict[str, tuple[str, str]]:
    """One request per event type, every id built from ``uid``; returns type -> the request span's ids."""
    items = [{"product_id": "p1", "product_name": "Mug", "quantity": 2, "price": 12.5}]
    out: dict[str, tuple[str, str]] = {}
    with httpx.Client(base_url=url, timeout=10) as client:
        r = client.post("/checkout", json={"session_id": f"{uid}-s1", "items": items})
        assert r.status_code == 200, r.text
        out["checkout.started"] = _ids(r)
        r = client.post("/checkout", json={"session_id": f"{uid}-s2", "items": []})
        assert r.status_code == 400, r.text
        out["checkout.failed"] = _ids(r)
        order = {"order_id": f"{uid}-o1", "user_id": "u1", "email": "buyer@example.com", "items": items}
        r = client.post("/orders", json=order)
        assert r.status_code in (200, 201), r.text
        out["order.created"] = _ids(r)
        r = client.post(f"/orders/{uid}-o1/complete")
        assert r.status_code == 200, r.text
        out["order.completed"] = _ids(r)
        incoming = {"traceparent": f"00-{INCOMING_TRACE}-{INCOMING_SPAN}-01"}
        r = client.post(f"/orders/{uid}-o1/refund", json={"amount": 5.0}, headers=incoming)
        assert r.status_code == 200, r.text
        out["order.refunded"] = _ids(r)
        r = client.post("/referrals/claim", json={"referrer_id": "u1", "referee_id": f"{uid}-u2", "code": "REF1"})
        assert r.status_code == 200, r.text
        out["referral.claimed"] = _ids(r)
    return out


async def own_messages(js: JetStreamContext, sent: dict[str, tuple[str, str]]) -> list[Any]:
    """This test's messages of COMMERCE: those carrying one of its requests' span ids (checkout.failed has no
    id of ours in its data), in stream order."""
    by_seq = {m.seq: m for _, span_id in sent.values() for m in await stored_messages(js, span_id)}
    return [by_seq[seq] for seq in sorted(by_seq)]


async def wait_for_events(
    js: JetStreamContext, store: EventStore, sent: dict[str, tuple[str, str]], timeout: float = 15.0
) -> None:
    """Poll COMMERCE (this test's messages) and the collector store until each holds one event per request."""
    deadline = time.monotonic() + timeout
    while True:
        in_stream = len(await own_messages(js, sent))
        if (in_stream >= len(sent) and store.count() >= len(sent)) or time.monotonic() >= deadline:
            return
        await asyncio.sleep(0.05)  # polling interval; the loop ends at the deadline


async def check_delivery(js: JetStreamContext, store: EventStore, sent: dict[str, tuple[str, str]], uid: str) -> None:
    """Every event is in COMMERCE and in the collector once, with its request span's trace and span ids."""
    await wait_for_events(js, store, sent)
    msgs = await own_messages(js, sent)
    assert len(msgs) == len(sent)
    envelopes: dict[str, dict[str, Any]] = {}
    for msg in msgs:
        env = orjson.loads(msg.data or b"{}")
        envelopes[env["type"]] = env
        assert (msg.headers or {})["traceparent"].startswith(f"00-{env['trace_id']}-{env['span_id']}-")
    assert set(envelopes) == set(sent) == EXPECTED_TYPES
    for event_type, (trace_id, span_id) in sent.items():
        env = envelopes[event_type]
        assert (env["trace_id"], env["span_id"]) == (trace_id, span_id), event_type
        assert env["organization_id"] == "acme-shop"
    assert sent["order.refunded"][0] == INCOMING_TRACE  # the incoming traceparent was continued
    assert envelopes["order.created"]["ga4"]["items"][0]["item_id"] == "p1"
    assert envelopes["order.completed"]["data"]["revenue"] == 25.0
    assert "empty cart" in envelopes["checkout.failed"]["data"]["error_message"]
    assert envelopes["referral.claimed"]["id"] == f"{uid}-u2"

    stored = {e.type: e for e in store.query(limit=100)}
    assert len(stored) == store.count() == len(sent)
    for event_type, (trace_id, span_id) in sent.items():
        assert (stored[event_type].trace_id, stored[event_type].span_id) == (trace_id, span_id), event_type
        assert stored[event_type].event_id == envelopes[event_type]["event_id"]


@pytest.mark.parametrize("launch", ["opentelemetry-instrument", "python"])
async def test_fastapi_shop(
    tmp_path: Path, nats_server: NatsServer, js: JetStreamContext, uid: str, launch: str
) -> None:
    """uvicorn under opentelemetry-instrument (env only) or `python fastapi_shop.py` (configure()): each event
    carries its FastAPI request span's ids, in COMMERCE and in the collector."""
    with running_collector(tmp_path / "collector.db") as (collector, store):
        port = free_port()
        if launch == "python":
            env = _env({"OTEL_COMMERCE_LINGER_MS": "5"})
            cmd = [sys.executable, str(EXAMPLES / "fastapi_shop.py"), "--port", str(port)]
            cmd += ["--nats-url", nats_server.url, "--collector", collector.url]
        else:
            env = _env(
                {
                    # no OTEL_PYTHON_*: the official distro + configurator, our instrumentor beside them
                    "OTEL_TRACES_EXPORTER": "none",
                    "OTEL_METRICS_EXPORTER": "none",
                    "OTEL_LOGS_EXPORTER": "console",
                    "OTEL_SERVICE_NAME": "fastapi-shop",
                    "OTEL_COMMERCE_NATS_URL": nats_server.url,
                    "OTEL_COMMERCE_COLLECTOR_ENDPOINT": collector.url,
                    "OTEL_COMMERCE_LINGER_MS": "5",
                }
            )
            cmd = [INSTRUMENT, sys.executable, "-m", "uvicorn", "--app-dir", str(EXAMPLES), "fastapi_shop:app"]
            cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
        with serving(cmd, env, port, tmp_path / "fastapi.log") as url:
            sent = shop_traffic(url, uid)
            await check_delivery(js, store, sent, uid)


async def test_flask_shop_run_directly(tmp_path: Path, nats_server: NatsServer, js: JetStreamContext, uid: str) -> None:
    """`python examples/flask_shop.py` (configure() + its own request spans): same ids in COMMERCE and the collector."""
    with running_collector(tmp_path / "collector.db") as (collector, store):
        port = free_port()
        cmd = [sys.executable, str(EXAMPLES / "flask_shop.py"), "--port", str(port)]
        cmd += ["--nats-url", nats_server.url, "--collector", collector.url]
        with serving(cmd, _env({"OTEL_COMMERCE_LINGER_MS": "5"}), port, tmp_path / "flask.log") as url:
            sent = shop_traffic(url, uid)
            await check_delivery(js, store, sent, uid)


def _consume(nats_url: str, *args: str) -> list[dict[str, str]]:
    cmd = [sys.executable, str(EXAMPLES / "consumer.py"), "--nats-url", nats_url, "--durable", "example-test", *args]
    proc = subprocess.run(cmd, env=_env({}), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [
        {"type": line.split()[0], **dict(re.findall(r"(\w+)=(\S+)", line))}
        for line in proc.stdout.splitlines()
        if "trace_id=" in line
    ]


async def test_consumer_continues_producer_traces_and_acks(
    fresh_nats_server: NatsServer, fresh_js: JetStreamContext
) -> None:
    """The consumer example prints each event with its producer's trace id (its span's parent is the producer
    span), acks it, and a second run of the same durable consumer gets only the rest (a server of its own: the
    example reads COMMERCE from its first message)."""
    nats_server, js = fresh_nats_server, fresh_js
    await bootstrap(js)
    tracer = TracerProvider().get_tracer("producer")
    publisher = Publisher(js)
    produced: dict[str, tuple[str, str]] = {}
    for i in range(4):
        with tracer.start_as_current_span(f"POST /orders/o{i}/complete") as span:
            await publisher.publish_order_completed(f"o{i}", "acme", "u1", "b@example.com", 1000 + i, "USD")
            sc = span.get_span_context()
            produced[f"o{i}"] = (format(sc.trace_id, "032x"), format(sc.span_id, "016x"))

    first = await asyncio.to_thread(_consume, nats_server.url, "--max", "2", "--timeout", "20")
    rest = await asyncio.to_thread(_consume, nats_server.url, "--max", "10", "--idle", "1", "--timeout", "20")
    assert [line["id"] for line in first] == ["o0", "o1"]
    assert [line["id"] for line in rest] == ["o2", "o3"]
    for line in first + rest:
        assert line["type"] == "order.completed"
        assert (line["trace_id"], line["parent_span_id"]) == produced[line["id"]]
        assert line["span_id"] != produced[line["id"]][1]
    info = await js.consumer_info("COMMERCE", "example-test")
    assert info.num_ack_pending == 0 and info.num_pending == 0
    assert info.ack_floor is not None and info.ack_floor.stream_seq == 4
