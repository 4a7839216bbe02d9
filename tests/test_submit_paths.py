"""``submit``'s common case (open engine, room in the queue, delivery thread running) is a short path; every other
case takes the general one. Both count alike: ``submitted`` (derived from the sequence numbers), drops, the wake-up
of an idle delivery thread and flush's accounting."""

from __future__ import annotations

import threading
from typing import Any

from fake_collector import FakeCollector
from polling import poll

from otel_commerce._delivery import DeliveryEngine
from otel_commerce._model import Pending, collector_from_args
from otel_commerce._sinks import CollectorSink


def _pending(tag: str) -> Pending:
    payload = collector_from_args(
        "referral.claimed", {"org_id": "acme", "referrer_id": "r", "referee_id": tag, "referral_code": "C"}
    )[0]
    return Pending(collector=payload, via="client")


def test_submitted_dropped_and_delivered_are_exact_on_both_paths(uid: str) -> None:
    with FakeCollector() as fc:
        fc.gate = threading.Event()  # holds every POST: the queue fills up behind the first send
        engine = DeliveryEngine([CollectorSink(fc.url)], queue_size=50, batch_size=10, exit_hook=False)
        try:
            assert engine.submit(_pending(f"{uid}-first"))  # no thread yet: the general path starts it
            assert poll(lambda: len(fc.headers_seen) == 1, 5.0)  # the idle lane sent it at once: now in flight
            results = [engine.submit(_pending(f"{uid}-{i}")) for i in range(200)]
            stats = engine.stats()
            assert stats["submitted"] == 201
            # the lane holds at most 50 and the submit queue at most 50: the oldest beyond them were dropped
            assert 0 < results.count(False) <= stats["dropped.reason.queue_full"] == stats["dropped"]
            fc.gate.set()
            assert not engine.flush(10)  # something was dropped since the last flush
            stats = engine.stats()
            assert stats["exported"] + stats["dropped"] == 201 and stats["queued"] == 0
            assert len(fc.events) == stats["exported"]
            for i in range(20):  # the delivery thread is idle now: the first submit wakes it up
                assert engine.submit(_pending(f"{uid}-again-{i}"))
            assert engine.flush(10)
            assert engine.stats()["submitted"] == 221 and engine.stats()["exported"] == stats["exported"] + 20
        finally:
            fc.gate.set()
            engine.shutdown(5)
    assert not engine.submit(_pending(f"{uid}-late"))  # closed: dropped, never counted as submitted
    assert engine.stats()["submitted"] == 221


def test_batches_are_taken_in_order_by_count_and_bytes() -> None:
    """A lane's next batch: the oldest entries, at most ``batch_size`` of them and ``batch_bytes`` bytes (at least
    one entry), the rest left in order — taken whole when the lane holds no more than a batch."""
    from collections import deque

    from otel_commerce._delivery._engine import _Entry, _Lane, _Track

    engine = DeliveryEngine([], batch_size=4, batch_bytes=100, exit_hook=False)
    try:
        track = _Track(None, 1, 0.0)  # type: ignore[arg-type]

        def lane_of(*sizes: int) -> _Lane:
            lane = _Lane(sink=None)  # type: ignore[arg-type]
            lane.entries = deque(_Entry(track, i, size, 0.0) for i, size in enumerate(sizes))
            return lane

        def take(lane: _Lane) -> list[int]:
            return [e.data for e in engine._take(lane)]

        lane = lane_of(10, 10, 10, 10, 10, 10)
        assert take(lane) == [0, 1, 2, 3] and [e.data for e in lane.entries] == [4, 5]
        assert take(lane) == [4, 5] and not lane.entries
        lane = lane_of(60, 30, 20, 5, 5)
        assert take(lane) == [0, 1] and [e.data for e in lane.entries] == [2, 3, 4]  # 60 + 30 + 20 > 100
        lane = lane_of(500, 1)
        assert take(lane) == [0] and [e.data for e in lane.entries] == [1]  # one over the limit leaves alone
        lane = lane_of(50, 50, 50)
        assert take(lane) == [0, 1] and [e.data for e in lane.entries] == [2]
    finally:
        engine.shutdown(1)


def test_routing_with_one_sink_and_with_two_counts_alike(nats_server: Any, uid: str) -> None:
    """An event one sink cannot encode is rejected (``invalid``) for that sink, one no sink takes is dropped
    (``no_sink``), the others are delivered — with one sink (the routing's short path) as with two."""
    from otel_commerce._model import event_from_args
    from otel_commerce._sinks import JetStreamSink

    def event(i: int, data: dict[str, Any] | None = None) -> Pending:
        ev, items = event_from_args("order.completed", {"order_id": f"rt_{uid}_{i}", "org_name": "o", "user_id": "u", "email": "a@b.co", "total_cents": 5})
        if data is not None:
            ev.data = data
        return Pending(event=ev, items=items)

    for sinks in (1, 2):
        errors: list[str] = []
        engine = DeliveryEngine(
            [JetStreamSink(nats_server.url) for _ in range(sinks)],
            on_error=lambda exc, pending, errors=errors: errors.append(str(exc)),
            exit_hook=False,
        )
        try:
            engine.submit(event(0))
            engine.submit(event(1, {"bad": object()}))  # not JSON-serialisable: no sink can encode it
            engine.submit(Pending(collector={"event": "x"}, via="client"))  # a collector payload: no JetStream sink
            engine.submit(event(2))
            assert not engine.flush(20)
            stats = engine.stats()
            assert stats["submitted"] == 4 and stats["queued"] == 0
            assert stats["exported"] == 2 * sinks and stats["rejected"] == sinks and stats["dropped"] == 1
            assert stats["rejected.reason.invalid"] == sinks and stats["dropped.reason.no_sink"] == 1
            assert len(errors) == sinks + 1 and sum("cannot encode" in e or "not JSON" in e for e in errors) == sinks
        finally:
            engine.shutdown(5)
