"""Adversarial tests of round 5's delivery-side speed work (helper S5): submit racing shutdown, the ack stream's
fast paths under arbitrary interleavings and cuts, the lock-free recorded counter under a real metric reader."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from typing import Any

from fake_collector import FakeCollector

from otel_commerce._cli._natsserver import NatsServer
from otel_commerce._delivery import DeliveryEngine, _metrics
from otel_commerce._errors import DeliveryError, TransientDeliveryError
from otel_commerce._model import Pending, collector_from_args
from otel_commerce._sinks import CollectorSink, _jetstream
from otel_commerce._sinks._jetstream import JetStreamSink


def _pending(tag: str) -> Pending:
    payload = collector_from_args(
        "referral.claimed", {"org_id": "acme", "referrer_id": "r", "referee_id": tag, "referral_code": "C"}
    )[0]
    return Pending(collector=payload, via="client")


def test_every_drop_of_submits_racing_shutdown_reaches_on_error(uid: str) -> None:
    """Threads submitting while the engine shuts down: an event dropped at the closed engine is reported on the
    delivery loop while it runs — one scheduled after the loop's last turn was lost with the loop (on_error saw
    fewer drops than stats() counted, in most rounds). Every drop and rejection now reaches on_error once."""
    events = [_pending(f"{uid}-{i}") for i in range(500)]
    with FakeCollector() as fc:
        for round_ in range(15):
            reported: list[Any] = []
            lock = threading.Lock()

            def on_error(exc: BaseException, pending: Any, reported: list[Any] = reported, lock: Any = lock) -> None:
                with lock:
                    reported.append(pending)

            engine = DeliveryEngine([CollectorSink(fc.url)], exit_hook=False, on_error=on_error)
            assert engine.submit(events[0]) and engine.flush(10)
            refused = [0, 0, 0]
            go = threading.Barrier(4)

            def submitter(
                t: int, engine: DeliveryEngine = engine, refused: list[int] = refused, go: Any = go
            ) -> None:
                go.wait()
                n = 0
                while refused[t] < 150:  # keeps submitting until well after the engine closed
                    if not engine.submit(events[n % len(events)]):
                        refused[t] += 1
                    n += 1

            threads = [threading.Thread(target=submitter, args=(t,)) for t in range(3)]
            for thread in threads:
                thread.start()
            go.wait()
            engine.shutdown(10)
            for thread in threads:
                thread.join()
            stats = engine.stats()
            assert stats["dropped.reason.shutdown"] >= sum(refused) == 450
            assert len(reported) == stats["dropped"] + stats["rejected"], (round_, stats, len(reported))


def test_the_recorded_counter_is_exact_under_a_real_reader_collecting_during_adds() -> None:
    """The lock-free per-event add against an SDK MeterProvider whose reader collects while four threads add (and
    the delivery side counts batches): every collected value is a total that never goes back, the last is exact."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    key = _metrics.count_key("recorded", via="s5-race")
    before = _metrics.total("recorded", via="s5-race")
    # the counter lives on the global provider (a proxy until one is set): its callback is ours, read it directly
    # through the provider's meter as a reader would after set_meter_provider
    meter = provider.get_meter("s5")
    meter.create_observable_counter("s5.recorded", callbacks=[_metrics._callback("recorded")])

    def value() -> int:
        data = reader.get_metrics_data()
        out = 0
        for rm in data.resource_metrics if data is not None else ():
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == "s5.recorded":
                        out += sum(p.value for p in m.data.data_points if p.attributes.get("via") == "s5-race")
        return out

    go = threading.Barrier(5)
    stop = threading.Event()
    seen: list[int] = []

    def adder() -> None:
        go.wait()
        for i in range(30_000):
            _metrics.add_one(key)
            if i % 3000 == 0:
                _metrics.count("exported", 1, sink="s5")

    def collector() -> None:
        go.wait()
        while not stop.is_set():
            seen.append(value())

    threads = [threading.Thread(target=adder) for _ in range(4)]
    watcher = threading.Thread(target=collector)
    for thread in [*threads, watcher]:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    watcher.join()
    try:
        assert value() == before + 120_000
        assert seen == sorted(seen) and len(seen) > 1
    finally:
        provider.shutdown()


_OK = b'{"stream":"COMMERCE","seq":%d}'
_DUP = b'{"stream":"COMMERCE","seq":%d,"duplicate":true}'
_DOMAIN = b'{"stream":"COMMERCE","domain":"hub","seq":%d}'
_WRONG_LAST = (
    b'{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 5"},"stream":"COMMERCE","seq":0}'
)
_UNAVAILABLE = b'{"error":{"code":503,"err_code":10077,"description":"JetStream system temporarily unavailable"}}'
_NO_RESPONDERS = b"NATS/1.0 503\r\n\r\n"


async def _ack_round(conn: Any, sid: int, osid: int, other: list[bytes], seed: int) -> None:
    """One random read sequence of the test below (see its docstring)."""
    nc, inbox = conn.nc, conn.inbox
    rnd = random.Random(seed)
    base0 = conn.counter
    chunks: list[_jetstream._AckBatch] = []
    total = 0
    for _ in range(rnd.randint(1, 3)):
        n = rnd.randint(1, 6)
        batch = _jetstream._AckBatch([object()] * (n + 1), 1, base0 + total, n)
        batch.remaining = n
        for k in range(n):  # over max_payload: never sent, no ack awaited
            if rnd.random() < 0.1 and batch.remaining > 1:
                batch.pending[k] = 0
                batch.remaining -= 1
        chunks.append(batch)
        total += n
    conn.chunks = list(chunks)
    conn.counter = base0 + total
    want: list[list[Any]] = [list(b.results) for b in chunks]
    originals = [list(b.results) for b in chunks]
    awaited = [bytearray(b.pending) for b in chunks]

    def first_ack(counter: int, kind: str) -> None:
        for i, b in enumerate(chunks):
            k = counter - b.base - 1
            if 0 <= k < b.count and awaited[i][k]:
                awaited[i][k] = 0
                want[i][1 + k] = kind

    frames: list[bytes] = []
    other_want: list[bytes] = []
    used: set[int] = set()
    with_headers: set[int] = set()
    in_order = rnd.random() < 0.5
    for i in range(rnd.randint(1, 20)):
        c = base0 + (i % (total + 2) if in_order and rnd.random() < 0.9 else rnd.randint(-1, total + 2))
        r = rnd.random()
        if c in with_headers or (0.66 <= r < 0.7 and c in used):  # a 503 is the only reply to its message
            continue
        if 0.7 <= r < 0.75:
            p = b"".join(
                rnd.choice([b"MSG ", b"x", _OK % 1, b"\r\n", b"MSG %s.%d %d 5\r\n" % (inbox.encode(), c, sid)])
                for _ in range(rnd.randint(0, 4))
            )
            frames.append(b"MSG s5.other %d %d\r\n%s\r\n" % (osid, len(p), p))
            other_want.append(p)
            continue
        if 0.75 <= r < 0.8:
            frames.append(rnd.choice([b"PING\r\n", b"PONG\r\n", b"+OK\r\n"]))
            continue
        used.add(c)
        if 0.66 <= r < 0.7:
            h = _NO_RESPONDERS
            frames.append(b"HMSG %s.%d %d %d %d\r\n%s\r\n" % (inbox.encode(), c, sid, len(h), len(h), h))
            first_ack(c, "transient")
            with_headers.add(c)
            continue
        body, kind = (
            (_DUP % c, "ok") if r < 0.1 else
            (_WRONG_LAST, "permanent") if r < 0.15 else
            (_UNAVAILABLE, "transient") if r < 0.2 else
            (_DOMAIN % c, "ok") if r < 0.25 else
            (_OK % c, "ok")
        )  # fmt: skip
        frames.append(b"MSG %s.%d %d %d\r\n%s\r\n" % (inbox.encode(), c, sid, len(body), body))
        first_ack(c, kind)
    stream = b"".join(frames)
    cuts = sorted(rnd.randint(0, len(stream)) for _ in range(rnd.randint(0, 5)))
    start = 0
    for cut in [*cuts, len(stream)]:
        await nc._ps.parse(stream[start:cut])
        start = cut
    def all_in() -> bool:  # the 503s and the other subscription's messages go through nats-py's tasks
        return len(other) >= len(other_want) and all(
            not isinstance(w, str) or b.results[1 + k] is not originals[i][1 + k]
            for i, b in enumerate(chunks)
            for k, w in enumerate(want[i][1:])
        )

    async def settled() -> None:
        while not all_in():
            await asyncio.sleep(0)

    await asyncio.wait_for(settled(), 5)
    for i, b in enumerate(chunks):
        for k in range(b.count):
            w, got = want[i][1 + k], b.results[1 + k]
            if w == "ok":
                assert got is None, (seed, i, k)
            elif w == "permanent":
                assert isinstance(got, DeliveryError) and not isinstance(got, TransientDeliveryError)
            elif w == "transient":
                assert isinstance(got, TransientDeliveryError), (seed, i, k, got)
            else:
                assert got is w, (seed, i, k)
        assert b.results[0] is want[i][0]
        assert b.remaining == sum(awaited[i]) and b.done.is_set() == (b.remaining == 0), (seed, i)
    assert other == other_want, seed
    other.clear()
    assert nc._ps.state == _jetstream._AWAITING_CONTROL_LINE and not nc._ps.buf, seed
    assert nc.is_connected


async def test_ack_streams_interleaved_and_cut_anywhere_settle_as_one_by_one() -> None:
    """Random reads of the ack subscription's traffic: plain, duplicate, domain and error acks of ours (in order,
    out of order, repeated, late, for messages never sent), no-responder acks with headers, another
    subscription's messages whose payloads hold ack-like bytes and ``MSG``, PING / PONG / +OK — over up to three
    chunks in flight, cut into up to six reads at random offsets. Each awaited message gets the outcome of its
    first ack (a model settling frame by frame), the rest is untouched, the other subscription gets its messages
    in order, and the parser is left clean."""
    with NatsServer() as server:
        sink = JetStreamSink(server.url, ensure_stream=False)
        await sink.start()
        try:
            assert await sink.wait_ready(10)
            conn = sink._conn
            assert conn is not None and conn.nc is not None
            nc, inbox = conn.nc, conn.inbox
            sid = next(s for s, sub in nc._subs.items() if sub.subject == inbox + ".*")
            other: list[bytes] = []

            async def on_other(msg: Any) -> None:
                other.append(msg.data)

            osid = (await nc.subscribe("s5.other", cb=on_other))._id
            for seed in range(1500):
                await _ack_round(conn, sid, osid, other, seed)
            conn.chunks = []
        finally:
            await sink.close()


def test_fold_counts_every_key_once() -> None:
    """Adds of several keys queued then folded by a read: each key's total grows by its own adds."""
    keys = [_metrics.count_key("recorded", via=f"s5-fold-{i}") for i in range(3)]
    before = [_metrics.total("recorded", via=f"s5-fold-{i}") for i in range(3)]
    adds = Counter({0: 5, 1: 1, 2: 7})
    for i, n in adds.items():
        for _ in range(n):
            _metrics.add_one(keys[i])
    assert [_metrics.total("recorded", via=f"s5-fold-{i}") - before[i] for i in range(3)] == [5, 1, 7]
