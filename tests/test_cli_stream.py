"""`tail`, `trace --nats-url`, `bootstrap` against a real nats-server, and `collector` as a real subprocess."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
import orjson
import pytest
from nats.js.client import JetStreamContext
from typer.testing import CliRunner

from otel_commerce import CommerceEvent, Publisher, bootstrap
from otel_commerce._cli._natsserver import NatsServer, free_port
from otel_commerce.cli import app
from otel_commerce.subjects import STREAM_NAME

runner = CliRunner()


def event(event_id: str, type_: str, org: str = "org-1", trace: str = "") -> CommerceEvent:
    return CommerceEvent(
        id="x-" + event_id,
        type=type_,
        timestamp=datetime.now(timezone.utc),
        organization_id=org,
        event_id=event_id,
        trace_id=trace,
        span_id="00f067aa0ba902b7" if trace else "",
    )


async def publish(js: JetStreamContext, *events: CommerceEvent) -> None:
    pub = Publisher(js)
    for e in events:
        await pub.publish(e.subject, e)


async def test_tail_follows_live_events_with_filters(js: JetStreamContext, nats_server: NatsServer, uid: str) -> None:
    """`tail --json` started before publishing prints only new events matching type and organization, one per line."""
    await bootstrap(js)
    org, trace = f"org-{uid}", uuid.uuid4().hex
    await publish(js, event(f"old-{uid}", "order.completed", org=org))  # before the tail: not shown
    before = (await js.stream_info(STREAM_NAME)).state.consumer_count  # the tail adds one consumer
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "otel_commerce.cli",
        "tail",
        "--nats-url",
        nats_server.url,
        "--json",
        "--type",
        "order.completed",
        "--org",
        org,
        "--limit",
        "2",
        "--for",
        "30s",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while (await js.stream_info(STREAM_NAME)).state.consumer_count <= before:
            assert proc.returncode is None and time.monotonic() < deadline, "tail never subscribed"
            await asyncio.sleep(0.02)  # poll interval of a deadline-bounded wait
        await publish(
            js,
            event(f"n1-{uid}", "order.completed", org=org),
            event(f"n2-{uid}", "referral.claimed", org=org),  # other type
            event(f"n3-{uid}", "order.completed", org=f"other-{uid}"),  # other organization
            event(f"n4-{uid}", "order.completed", org=org, trace=trace),
        )
        assert proc.stdout is not None
        lines = [orjson.loads(await asyncio.wait_for(proc.stdout.readline(), 15)) for _ in range(2)]
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert [x["event_id"] for x in lines] == [f"n1-{uid}", f"n4-{uid}"]
    assert lines[1]["trace_id"] == trace


async def test_trace_from_the_stream(js: JetStreamContext, nats_server: NatsServer, uid: str) -> None:
    """`trace --nats-url` scans COMMERCE and prints only the events of that trace."""
    await bootstrap(js)
    trace = uuid.uuid4().hex  # this test's own trace
    await publish(
        js,
        event(f"t1-{uid}", "checkout.started", trace=trace),
        event(f"t2-{uid}", "order.created"),
        event(f"t3-{uid}", "order.completed", trace=trace),
    )
    result = await asyncio.to_thread(runner.invoke, app, ["trace", trace, "--nats-url", nats_server.url, "--json"])
    assert result.exit_code == 0, result.output
    assert [orjson.loads(x)["event_id"] for x in result.stdout.splitlines()] == [f"t1-{uid}", f"t3-{uid}"]


async def test_bootstrap_creates_checks_and_reconciles(
    fresh_js: JetStreamContext, fresh_nats_server: NatsServer
) -> None:
    """`bootstrap` creates the stream, reports a too-short window (exit 1) and fixes it with --reconcile (on a
    server of its own, with no stream yet)."""
    js, nats_server = fresh_js, fresh_nats_server

    def run(*args: str) -> tuple[int, dict[str, object]]:
        r = runner.invoke(app, ["bootstrap", "--nats-url", nats_server.url, "--json", *args])
        return r.exit_code, orjson.loads(r.stdout)

    code, report = await asyncio.to_thread(run, "--duplicate-window", "2m")
    assert code == 0 and report["action"] == "created" and report["duplicate_window_seconds"] == 120
    code, report = await asyncio.to_thread(run, "--duplicate-window", "10m")
    assert code == 1 and report["action"] == "differs" and report["differences"]
    code, report = await asyncio.to_thread(run, "--duplicate-window", "10m", "--reconcile")
    assert code == 0 and report["action"] == "updated"
    assert (await js.stream_info(STREAM_NAME)).config.duplicate_window == 600


def test_tail_reports_an_unreachable_server() -> None:
    """`tail` against a port nobody listens on exits 2 with a clear message instead of hanging."""
    result = runner.invoke(app, ["tail", "--nats-url", f"nats://127.0.0.1:{free_port()}", "--for", "5s"])
    assert result.exit_code == 2 and "cannot connect to NATS" in result.stderr


def test_collector_command_serves_with_config_file(tmp_path: Path) -> None:
    """`otel-commerce collector --config FILE` serves the API with the file's settings (port, db, auth token)."""
    port = free_port()
    db = tmp_path / "sub.db"
    config = tmp_path / "collector.yaml"
    config.write_text(
        f"collector:\n  port: {port}\n  db: {db}\n  auth_token: ${{env:TEST_TOKEN}}\n  log_level: warning\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "otel_commerce.cli", "collector", "--config", str(config)],
        env={**os.environ, "TEST_TOKEN": "abc"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "collector did not start"
                time.sleep(0.05)  # poll interval of a deadline-bounded wait
        assert httpx.post(url + "/event", json={"event": "x"}).status_code == 401
        r = httpx.post(
            url + "/event", json={"event": "x", "event_id": "sub-1"}, headers={"Authorization": "Bearer abc"}
        )
        assert r.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    result = runner.invoke(app, ["events", "--db", str(db), "--json"])
    assert [orjson.loads(x)["event_id"] for x in result.stdout.splitlines()] == ["sub-1"]


def test_collector_command_rejects_bad_settings(tmp_path: Path) -> None:
    """Unknown settings in the config file are a clear error (exit 2), not silently ignored."""
    config = tmp_path / "bad.yaml"
    config.write_text("collector:\n  prot: 1234\n")
    result = runner.invoke(app, ["collector", "--config", str(config)])
    assert result.exit_code == 2 and "prot" in result.stderr


_RECORD_ONE = """
import os
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
import otel_commerce

trace.set_tracer_provider(TracerProvider())
with trace.get_tracer("shop").start_as_current_span("POST /orders") as span:
    otel_commerce.record_event(
        "order.completed", id=os.environ["APP_ORDER"], organization_id=os.environ["APP_ORG"], user_id="usr_1",
        session_id="sess_1", data={"order_id": os.environ["APP_ORDER"], "revenue": 59.5, "currency": "usd",
        "email": "buyer@example.com", "items": [{"product_id": "p1", "quantity": 2, "price": 29.75}]},
    )
    print(format(span.get_span_context().trace_id, "032x"))
assert otel_commerce.flush(20)
"""


def test_json_shape_is_the_same_from_the_store_and_from_the_stream(
    tmp_path: Path, nats_server: NatsServer, uid: str
) -> None:
    """One event recorded by a real process into a real nats-server and a real collector store prints the same
    JSON object (JSON_KEYS: the envelope fields + source) from `events`, `trace --db`, `trace --nats-url`, `tail`."""
    from collector_server import running_collector

    from otel_commerce._cli._common import JSON_KEYS

    assert runner.invoke(app, ["bootstrap", "--nats-url", nats_server.url]).exit_code in (0, 1)
    org = f"org-{uid}"
    with running_collector(tmp_path / "events.db") as (server, _):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PUBSUB_URL"))}
        env |= {
            "OTEL_COMMERCE_NATS_URL": nats_server.url,
            "OTEL_COMMERCE_COLLECTOR_ENDPOINT": server.url,
            "OTEL_COMMERCE_LINGER_MS": "5",
            "APP_ORDER": f"ord-{uid}",
            "APP_ORG": org,
        }
        proc = subprocess.run(
            [sys.executable, "-c", _RECORD_ONE], env=env, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
    trace_id = proc.stdout.strip()
    db = str(tmp_path / "events.db")
    outputs = {}
    for name, args in {
        "events": ["events", "--db", db, "--org", org],
        "trace --db": ["trace", trace_id, "--db", db],
        "trace --nats-url": ["trace", trace_id, "--nats-url", nats_server.url],
        "tail": ["tail", "--nats-url", nats_server.url, "--org", org, "--since", "1h", "--limit", "1", "--for", "20s"],
    }.items():
        result = runner.invoke(app, [*args, "--json"])
        assert result.exit_code == 0, (name, result.output)
        [outputs[name]] = [orjson.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    for name, got in outputs.items():
        assert list(got) == list(JSON_KEYS), name
    sources = {name: got.pop("source") for name, got in outputs.items()}
    assert sources == {"events": "hanzo", "trace --db": "hanzo", "trace --nats-url": "stream", "tail": "stream"}
    store, stream = outputs["events"], outputs["trace --nats-url"]
    assert store == outputs["trace --db"] and stream == outputs["tail"]
    assert store == stream
    assert (store["id"], store["organization_id"], store["user_id"], store["session_id"], store["trace_id"]) == (
        f"ord-{uid}", org, "usr_1", "sess_1", trace_id
    )
    assert store["data"]["currency"] == "USD" and store["data"]["items"][0]["product_id"] == "p1"


async def test_trace_scan_reads_what_its_consumer_skipped(
    js: JetStreamContext, nats_server: NatsServer, uid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan checks the stream sequences its consumer delivers: a jump (here an interior message deleted, so the
    consumer never delivers it) is read as stored, deleted sequences skipped; the stored reader alone returns the
    matching envelopes in order."""
    from otel_commerce._cli import _stream
    from otel_commerce._cli._stream import EventFilter, read_stored, scan_stream
    from otel_commerce._cli._stream import connect as stream_connect

    asked: list[tuple[int, int]] = []

    async def reading(js_: object, flt_: EventFilter, first: int, last_: int) -> list[dict[str, object]]:
        asked.append((first, last_))
        return await read_stored(js_, flt_, first, last_)

    monkeypatch.setattr(_stream, "read_stored", reading)  # our own function, watched: which sequences it fills

    await bootstrap(js)
    trace = uuid.uuid4().hex
    await publish(
        js,
        event(f"g1-{uid}", "checkout.started", trace=trace),
        event(f"g2-{uid}", "order.created", trace=trace),
        event(f"g3-{uid}", "order.completed", trace=trace),
    )
    last = (await js.stream_info(STREAM_NAME)).state.last_seq
    await js.delete_msg(STREAM_NAME, last - 1)  # g2
    flt = EventFilter(trace_id=trace)
    assert [e["event_id"] for e in await read_stored(js, flt, last - 2, last)] == [f"g1-{uid}", f"g3-{uid}"]
    nc = await stream_connect(nats_server.url)
    try:
        assert [e["event_id"] for e in await scan_stream(nc, flt)] == [f"g1-{uid}", f"g3-{uid}"]
    finally:
        await nc.close()
    assert asked == [(last - 1, last - 1)]  # the jump over g2's sequence was noticed and read (deleted: nothing)
