"""Delivery policy at the edges (issue 16): throttling waited out, one bad event costs nobody else.

Real HTTP servers on 127.0.0.1 (the controllable fake collector, and our own collector app).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from collector_server import running_collector
from fake_collector import FakeCollector
from polling import poll

from otel_commerce._cli._natsserver import NatsServer
from otel_commerce._delivery import DeliveryEngine
from otel_commerce._delivery._retry import MAX_RETRY_AFTER_SECONDS, parse_retry_after, retry_delay_seconds
from otel_commerce._errors import PermanentDeliveryError
from otel_commerce._model import Pending, apply_marketing, event_from_args, uuid7
from otel_commerce._sinks import CollectorSink, JetStreamSink
from otel_commerce._sinks._collector import POISON_AFTER_FAILURES
from otel_commerce.subjects import STREAM_NAME

FAST = {"backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05, "linger_seconds": 0.0}
_NO_LINGER_BACKOFF = {"backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05}


@pytest.fixture
def collector() -> Iterator[FakeCollector]:
    with FakeCollector() as fc:
        yield fc


class Errors:
    def __init__(self) -> None:
        self.seen: list[tuple[BaseException, Pending | None]] = []
        self._lock = threading.Lock()

    def __call__(self, error: BaseException, pending: Pending | None) -> None:
        with self._lock:
            self.seen.append((error, pending))


def _event(prefix: str, i: int, **props: Any) -> Pending:
    return Pending(
        collector={
            "event": "thing_happened",
            "distinct_id": f"{prefix}-{i}",
            "properties": {"event_id": uuid7(), **props},
        },
        via="client",
    )


def _engine(url: str, **options: Any) -> DeliveryEngine:
    return DeliveryEngine([CollectorSink(url, timeout_seconds=2.0)], **{**FAST, **options})


# --------------------------------------------------------------------------- Retry-After parsing
def test_retry_after_forms_and_absurd_values() -> None:
    """Delta-seconds, HTTP dates (past → 0, future → the difference) and absurd values (ignored or capped)."""
    now = 1_700_000_000.0  # 2023-11-14T22:13:20Z
    assert parse_retry_after("1") == 1.0 and parse_retry_after(" 0 ") == 0.0 and parse_retry_after("0.4") == 0.4
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now=now) == pytest.approx(30.0)
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now=now) == 0.0
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now=now) == MAX_RETRY_AFTER_SECONDS
    assert parse_retry_after("9" * 400) == MAX_RETRY_AFTER_SECONDS
    for garbage in ("-1", "-0.5", "soon", "1e9", "inf", "nan", "", None, "Tue, 14 Nov 2023 22:13:50", "12 parsecs"):
        assert parse_retry_after(garbage) is None, garbage


def test_wait_is_max_of_backoff_and_retry_after_with_jitter_and_a_cap() -> None:
    """Retry-After: 0 never shortens the backoff; a Retry-After is waited at least as long, at most +20 %."""
    for _ in range(200):
        assert 0.5 <= retry_delay_seconds(1, 1.0, 30.0, 0.0) <= 1.0  # backoff 1 s, jittered down to half
        assert 2.0 <= retry_delay_seconds(1, 0.01, 0.05, 2.0) <= 2.4
        assert retry_delay_seconds(40, 1.0, 1e9, None) <= MAX_RETRY_AFTER_SECONDS
        assert retry_delay_seconds(1, 0.01, 0.05, MAX_RETRY_AFTER_SECONDS) == MAX_RETRY_AFTER_SECONDS


# --------------------------------------------------------------------------- throttling waited out
def test_throttle_with_retry_after_1_is_waited_out_without_exhausting_attempts(collector: FakeCollector) -> None:
    """429 + Retry-After: 1 for ~2 s with max_attempts=2: nothing lost, the server asked ~2 times, not hammered."""
    collector.throttle(2.0, "1")
    engine = _engine(collector.url, max_attempts=2, batch_size=100, linger_seconds=0.05)
    pendings = [_event("ra1", i) for i in range(100)]
    for p in pendings:
        engine.submit(p)
    assert engine.flush(15)
    assert set(collector.event_ids()) == {p.event_id for p in pendings}
    stats = engine.stats()
    assert stats["dropped"] == 0 and stats["exported"] == 100 and stats["retried"] >= 100
    assert 1 <= collector.statuses().count(429) <= 3  # each wait was >= 1 s
    engine.shutdown(5)


def test_throttle_with_retry_after_0_backs_off_and_loses_nothing(collector: FakeCollector) -> None:
    """429 + Retry-After: 0 for ~1 s with max_attempts=3: the backoff applies, attempts are not spent."""
    collector.throttle(1.0, "0")
    engine = _engine(collector.url, max_attempts=3, batch_size=50)
    pendings = [_event("ra0", i) for i in range(50)]
    for p in pendings:
        engine.submit(p)
    assert engine.flush(15)
    assert set(collector.event_ids()) == {p.event_id for p in pendings}
    assert engine.stats()["dropped"] == 0
    assert collector.statuses().count(429) > 3  # more throttled answers than max_attempts, still nothing lost
    engine.shutdown(5)


def test_throttle_is_bounded_by_the_age_cap(collector: FakeCollector) -> None:
    """A throttle that never ends is not retried forever: the age cap drops (and reports) the event."""
    collector.throttle(60.0, "0")
    errors = Errors()
    engine = _engine(collector.url, max_attempts=2, max_age_seconds=0.5, on_error=errors)
    engine.submit(_event("age", 0))
    assert engine.flush(10) is False
    stats = engine.stats()
    assert stats["dropped.reason.max_age"] == 1 and stats.get("dropped.reason.max_attempts", 0) == 0
    assert len(errors.seen) == 1
    engine.shutdown(5)


# --------------------------------------------------------------------------- poison events
def _one_batch(url: str, pendings: list[Pending], errors: Errors | None = None, **options: Any) -> DeliveryEngine:
    engine = _engine(url, batch_size=len(pendings), linger_seconds=5.0, on_error=errors, **options)
    for p in pendings:
        engine.submit(p)
    return engine


def test_a_proxy_refusing_everything_costs_at_most_three_requests_per_batch(collector: FakeCollector) -> None:
    """400 to every request, 64 events in one batch: 3 requests (batch + two halves), all 64 rejected."""
    collector.reject_all = 400
    errors = Errors()
    engine = _one_batch(collector.url, [_event("all400", i) for i in range(64)], errors)
    assert engine.flush(10) is False
    assert len(collector.statuses("/events")) <= 3
    assert engine.stats()["rejected"] == 64 and len(errors.seen) == 64
    assert all(isinstance(e, PermanentDeliveryError) and "refused by policy" in str(e) for e, _ in errors.seen)
    engine.shutdown(5)


def test_one_bad_event_in_512_costs_logarithmic_requests(collector: FakeCollector) -> None:
    """1 bad event in 512: at most 2·log2(512)+1 = 19 requests, 511 stored, the bad one rejected alone."""
    errors = Errors()
    pendings = [_event("bad512", i, bad=(i == 300)) for i in range(512)]
    engine = _one_batch(collector.url, pendings, errors)
    assert engine.flush(10) is False
    assert len(collector.statuses("/events")) <= 2 * math.log2(512) + 1
    assert set(collector.event_ids()) == {p.event_id for i, p in enumerate(pendings) if i != 300}
    assert [pending for _, pending in errors.seen] == [pendings[300]]
    engine.shutdown(5)


def test_a_500_outage_is_never_bisected_and_loses_nothing(collector: FakeCollector) -> None:
    """500 to everything for a while (beyond the poison threshold): whole batches or empty probes only, 0 lost."""
    collector.always_status = 500
    pendings = [_event("outage", i) for i in range(64)]
    engine = _one_batch(collector.url, pendings, max_attempts=1000)
    assert poll(lambda: len(collector.statuses()) >= POISON_AFTER_FAILURES + 4)
    collector.always_status = None
    assert engine.flush(10)
    assert set(collector.event_ids()) == {p.event_id for p in pendings}
    assert set(collector.batch_sizes) <= {0, 64}, collector.batch_sizes  # no half batch was ever sent
    assert engine.stats()["dropped"] == 0 and engine.stats()["rejected"] == 0
    engine.shutdown(5)


def test_an_event_the_server_fails_on_is_isolated_once_the_server_is_known_up(collector: FakeCollector) -> None:
    """One event making the server answer 500: after the threshold and a successful probe, it alone is rejected."""
    errors = Errors()
    pendings = [_event("crash", i, crash=(i == 7)) for i in range(64)]
    engine = _one_batch(collector.url, pendings, errors, max_attempts=1000)
    assert engine.flush(10) is False
    assert set(collector.event_ids()) == {p.event_id for i, p in enumerate(pendings) if i != 7}
    assert [pending for _, pending in errors.seen] == [pendings[7]]
    assert engine.stats()["rejected"] == 1
    engine.shutdown(5)


def test_our_collector_names_the_refused_index_and_the_sink_uses_it(tmp_path: Path) -> None:
    """Against our collector, the refused index in the 400 is used: one request, 63 stored, 1 rejected."""
    errors = Errors()
    pendings = [_event("named", i) for i in range(64)]
    assert pendings[5].collector is not None
    pendings[5].collector["quantity"] = -3  # refused by the collector's validation
    with running_collector(tmp_path / "named.db") as (server, store):
        engine = _one_batch(server.url, pendings, errors)
        assert engine.flush(10) is False
        assert store.count() == 63
        engine.shutdown(5)
    assert [pending for _, pending in errors.seen] == [pendings[5]]
    assert "event refused: quantity" in str(errors.seen[0][0])


# --------------------------------------------------------------------------- JetStream max_payload
def _sized_pending(prefix: str, i: int, payload_bytes: int | None = None) -> Pending:
    """An order.completed event whose encoded envelope is exactly ``payload_bytes`` long (when given)."""
    event, items = event_from_args(
        "order.completed",
        {
            "order_id": f"{prefix}_{uuid7()}_{i}",
            "org_name": "org_1",
            "user_id": "u",
            "email": "a@b.co",
            "total_cents": 100,
        },
    )
    apply_marketing(event, items)
    if payload_bytes is not None:
        event.data["note"] = ""
        base = len(event.to_json())
        event.data["note"] = "x" * (payload_bytes - base)
        assert len(event.to_json()) == payload_bytes
    return Pending(event=event, items=items)


def test_over_limit_message_is_rejected_alone_headers_included(tmp_path: Path) -> None:
    """max_payload 4096: a payload under the limit whose header block takes it over is rejected before
    sending (counted, on_error), the rest of its batch is stored at once, the connection is never closed."""
    conf = tmp_path / "small.conf"
    conf.write_text("max_payload: 4096\n")
    errors = Errors()
    with NatsServer(extra_args=["-c", str(conf)]) as server:
        sink = JetStreamSink(server.url)
        engine = DeliveryEngine([sink], batch_size=64, linger_seconds=5.0, on_error=errors, **_NO_LINGER_BACKOFF)
        assert engine.submit(_sized_pending("warm", 0)) and engine.flush(15)  # connected, stream created
        good = [_sized_pending("mp", i) for i in range(20)]
        tight = _sized_pending("mp", 100, payload_bytes=4096 - 8)  # payload fits, payload + headers does not
        huge = _sized_pending("mp", 101, payload_bytes=10_000)
        batch = [*good[:10], tight, *good[10:], huge]
        for p in batch:
            engine.submit(p)
        start = time.monotonic()
        assert engine.flush(10) is False
        elapsed = time.monotonic() - start
        stats = engine.stats()
        assert stats["exported"] == 21 and stats["rejected"] == 2 and stats["retried"] == 0, stats
        assert elapsed < 2.0  # never waited for an ack deadline or a reconnect
        assert sorted(id(p) for _, p in errors.seen) == sorted([id(tight), id(huge)])
        assert all("max payload of 4096" in str(e) for e, _ in errors.seen)
        assert sink.ready()
        engine.shutdown(5)
        stored = asyncio.run(_stream_msg_ids(server.url))
    assert len(stored) == 21  # the warm-up event and the 20 good ones
    assert tight.event_id not in stored and huge.event_id not in stored
    assert {p.event_id for p in good} <= stored


async def _stream_msg_ids(url: str) -> set[str]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        total = (await js.stream_info(STREAM_NAME)).state.messages
        sub = await js.subscribe("commerce.>", ordered_consumer=True)
        ids = set()
        for _ in range(total):
            msg = await sub.next_msg(timeout=5)
            ids.add((msg.headers or {}).get("Nats-Msg-Id", ""))
        await sub.unsubscribe()
        return ids
    finally:
        await nc.close()
