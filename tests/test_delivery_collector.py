"""The delivery engine with the collector sink against a real HTTP server that misbehaves on request."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fake_collector import FakeCollector
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from polling import poll

from otel_commerce._delivery import DeliveryEngine
from otel_commerce._errors import PermanentDeliveryError, TransientDeliveryError
from otel_commerce._model import Pending, uuid7
from otel_commerce._sinks import CollectorSink

FAST = {"backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05, "linger_seconds": 0.0}


@pytest.fixture
def collector() -> Iterator[FakeCollector]:
    with FakeCollector() as fc:
        yield fc


class Errors:
    """A thread-safe on_error recorder."""

    def __init__(self) -> None:
        self.seen: list[tuple[BaseException, Pending | None]] = []
        self._lock = threading.Lock()

    def __call__(self, error: BaseException, pending: Pending | None) -> None:
        with self._lock:
            self.seen.append((error, pending))


def _event(i: int, **props: Any) -> Pending:
    return Pending(
        collector={
            "event": "thing_happened",
            "distinct_id": f"u{i}",
            "properties": {"event_id": uuid7(), "i": i, **props},
        },
        via="client",
    )


def _engine(collector: FakeCollector, **options: Any) -> DeliveryEngine:
    return DeliveryEngine(
        [CollectorSink(collector.url, timeout_seconds=options.pop("timeout", 2.0))], **{**FAST, **options}
    )


_poll = poll


def test_outage_with_500s_then_recovery_delivers_everything(collector: FakeCollector) -> None:
    """A run of 500s is retried with backoff; every event arrives once the collector recovers."""
    collector.fail_next(4, status=500)
    engine = _engine(collector)
    pendings = [_event(i) for i in range(50)]
    for p in pendings:
        assert engine.submit(p)
    assert engine.flush(10)
    assert {p.event_id for p in pendings} == set(collector.event_ids())
    stats = engine.stats()
    assert stats["retried"] > 0 and stats["exported.collector"] == 50 and stats["dropped"] == 0
    assert collector.statuses().count(500) == 4
    engine.shutdown(5)


def test_429_honours_retry_after(collector: FakeCollector) -> None:
    """A 429 with Retry-After pauses the sink for that long (not the tiny backoff) before retrying."""
    collector.fail_next(1, status=429, retry_after="0.4")
    engine = _engine(collector)
    start = time.monotonic()
    engine.submit(_event(0))
    assert engine.flush(10)
    assert time.monotonic() - start >= 0.4
    assert len(collector.events) == 1 and engine.stats()["retried"] == 1
    engine.shutdown(5)


def test_permanent_500_is_capped_counted_and_reported(collector: FakeCollector) -> None:
    """When the collector never recovers, the per-event attempt cap drops the event and tells on_error."""
    collector.always_status = 500
    errors = Errors()
    engine = _engine(collector, max_attempts=3, on_error=errors)
    pending = _event(0)
    engine.submit(pending)
    assert engine.flush(10) is False
    stats = engine.stats()
    assert stats["dropped"] == 1 and stats["dropped.collector"] == 1 and stats["dropped.reason.max_attempts"] == 1
    assert stats["retried"] == 2 and stats["exported"] == 0
    assert len(errors.seen) == 1
    error, reported = errors.seen[0]
    assert isinstance(error, TransientDeliveryError) and error.status == 500 and reported is pending
    assert collector.statuses() == [500, 500, 500]
    engine.shutdown(5)


def test_age_cap_drops_events_that_cannot_be_delivered_in_time(collector: FakeCollector) -> None:
    """An event older than max_age_seconds is dropped (reason max_age) even with attempts left."""
    collector.always_status = 503
    errors = Errors()
    engine = _engine(collector, max_attempts=1000, max_age_seconds=0.3, on_error=errors)
    engine.submit(_event(0))
    assert engine.flush(10) is False
    assert engine.stats()["dropped.reason.max_age"] == 1 and len(errors.seen) == 1
    engine.shutdown(5)


def test_one_bad_event_in_a_batch_is_the_only_one_rejected(collector: FakeCollector) -> None:
    """A 400 on a batch is split until the bad event is isolated; the others are delivered."""
    errors = Errors()
    engine = _engine(collector, linger_seconds=0.2, on_error=errors)
    pendings = [_event(i, bad=(i == 13)) for i in range(40)]
    for p in pendings:
        engine.submit(p)
    assert engine.flush(10) is False  # one event was rejected
    got = set(collector.event_ids())
    assert got == {p.event_id for p in pendings if p is not pendings[13]}
    stats = engine.stats()
    assert stats["rejected"] == 1 and stats["exported"] == 39 and stats["rejected.reason.http_400"] == 1
    error, reported = errors.seen[0]
    assert isinstance(error, PermanentDeliveryError) and "bad event" in str(error) and reported is pendings[13]
    assert engine.flush(1)  # the failure was reported once; nothing new failed since
    engine.shutdown(5)


def test_collector_without_batch_route_falls_back_to_single_posts(collector: FakeCollector) -> None:
    """A 404 on /events makes the sink use POST /event, one event per request, and nothing is lost."""
    collector.batch_route = False
    engine = _engine(collector)
    pendings = [_event(i) for i in range(10)]
    for p in pendings:
        engine.submit(p)
    assert engine.flush(10)
    assert sorted(collector.event_ids()) == sorted(p.event_id for p in pendings)
    assert collector.statuses("/events") == [404]
    assert len(collector.statuses("/event")) == 10
    engine.shutdown(5)


def test_slow_collector_times_out_and_is_retried(collector: FakeCollector) -> None:
    """Responses slower than the request timeout are retried; delivery completes when it speeds up."""
    collector.delay_seconds = 0.3
    engine = _engine(collector, timeout=0.1)
    pendings = [_event(i) for i in range(5)]
    for p in pendings:
        engine.submit(p)
    assert _poll(lambda: engine.stats()["retried"] >= 1)
    collector.delay_seconds = 0.0
    assert engine.flush(10)
    assert {p.event_id for p in pendings} <= set(collector.event_ids())  # at least once
    engine.shutdown(5)


def test_full_queue_drops_the_oldest_and_never_blocks(collector: FakeCollector) -> None:
    """With the sink stuck, submits stay fast, the oldest events are dropped and counted, the newest kept."""
    collector.delay_seconds = 0.5
    errors = Errors()
    engine = _engine(collector, queue_size=10, batch_size=5, on_error=errors)
    pendings = [_event(i) for i in range(200)]
    start = time.monotonic()
    accepted = [engine.submit(p) for p in pendings]
    elapsed = time.monotonic() - start
    assert elapsed < 0.5  # never waited for the slow collector
    collector.delay_seconds = 0.0
    assert engine.flush(10) is False
    got = set(collector.event_ids())
    assert {p.event_id for p in pendings[-10:]} <= got  # the newest survive
    assert len(got) <= 10 + 10 + 5  # at most a queue, a lane and one in-flight batch
    stats = engine.stats()
    assert stats["dropped"] == 200 - len(got) and stats["exported"] == len(got)
    assert stats.get("dropped.reason.queue_full", 0) == 200 - len(got)
    assert len(errors.seen) == 200 - len(got)
    assert not all(accepted) or stats["dropped.collector"] > 0
    engine.shutdown(5)


def test_shutdown_honours_its_deadline_and_counts_what_is_left(collector: FakeCollector) -> None:
    """shutdown(timeout) returns within the deadline when the collector is down and counts the rest as dropped."""
    collector.always_status = 500
    engine = _engine(collector, backoff_initial_seconds=5.0, backoff_max_seconds=5.0)
    for i in range(5):
        engine.submit(_event(i))
    start = time.monotonic()
    assert engine.shutdown(0.3) is False
    assert time.monotonic() - start < 2.0
    stats = engine.stats()
    assert stats["dropped"] == 5 and stats["dropped.reason.shutdown"] == 5 and stats["queued"] == 0
    assert engine.submit(_event(99)) is False  # closed: counted, not raised


def test_delivery_thread_calls_are_never_traced(collector: FakeCollector) -> None:
    """With httpx instrumented (the real HTTPXClientInstrumentor), the engine's own POSTs make no spans: the
    delivery thread runs with instrumentation suppressed, so exporting can't trace (or recurse into) itself."""

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    instrumentor = HTTPXClientInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        engine = _engine(collector)
        for i in range(5):
            engine.submit(_event(i))
        assert engine.flush(10) and len(collector.events) == 5
        engine.shutdown(5)
        assert [s.name for s in spans.get_finished_spans()] == []
        assert httpx.get(collector.url + "/health", timeout=5).status_code == 200  # instrumentation is live:
        assert [s.name for s in spans.get_finished_spans()] == ["GET"]  # a call of ours is traced
    finally:
        instrumentor.uninstrument()


def test_endpoint_with_path_and_query_posts_to_path_events_keeping_the_query(tmp_path: Any) -> None:
    """`configure(collector_endpoint="http://h:p/base?token=qq")` posts to `/base/events?token=qq` (not
    `/base?token=qq/events`): a real server that answers 404 to anything else."""
    import json
    import os
    import subprocess
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seen.append(self.path)
            ok = self.path == "/base/events?token=qq"
            answer = json.dumps({"status": "ok", "count": len(json.loads(body)["events"])} if ok else {"error": "no"})
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer.encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_port}/base?token=qq"
        script = (
            "import otel_commerce\n"
            f"otel_commerce.configure(collector_endpoint={endpoint!r}, handle_signals=False)\n"
            "otel_commerce.record_event('loyalty.points_earned', organization_id='acme', id='p1', data={'n': 1})\n"
            "assert otel_commerce.flush(10), otel_commerce.stats()\n"
            "s = otel_commerce.stats(); print(s.get('exported'), s.get('rejected'))\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_COMMERCE_NATS", "PUBSUB_URL"))}
        proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
    assert proc.returncode == 0, proc.stderr
    assert seen and set(seen) == {"/base/events?token=qq"}, seen
    assert "404" not in proc.stderr and "rejected" not in proc.stderr.lower(), proc.stderr
