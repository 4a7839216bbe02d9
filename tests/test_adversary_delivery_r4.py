"""Adversarial tests of the round-4 delivery path (regex-settled PubAcks, cut ack frames, several sends in flight
per JetStream lane) against a real nats-server.

Where the acks must take shapes JetStream does not write on demand (extra fields, another key order, a second
ack for one message, error acks, acks larger than a read), a plain NATS responder on ``commerce.>`` answers
instead of a stream (``ensure_stream=False`` on a server without COMMERCE): the replies still travel through a
real nats-server and nats-py's reader, only their bodies are chosen by the test.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import nats
import pytest
from polling import poll

from otel_commerce._cli._natsserver import NatsServer
from otel_commerce._delivery import DeliveryEngine
from otel_commerce._model import Pending, event_from_args
from otel_commerce._sinks import JetStreamSink
from otel_commerce._sinks._jetstream import prepare_message

FAST = {"backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05, "linger_seconds": 0.0}

#: body(msg_id, attempt, seq) -> the ack bodies to send back (in order); [] = no reply
Replies = Callable[[str, int, int], list[bytes]]


def _pending(uid: str, i: int) -> Pending:
    event, items = event_from_args(
        "order.completed",
        {"order_id": f"adv_{uid}_{i}", "org_name": "org_1", "user_id": "u", "email": "a@b.co", "total_cents": 100 + i},
    )
    return Pending(event=event, items=items)


class Responder:
    """A core-NATS subscriber on ``commerce.>`` replying as ``replies`` says, on its own thread and loop."""

    def __init__(self, url: str, replies: Replies) -> None:
        self.url = url
        self.replies = replies
        self.attempts: dict[str, int] = {}
        self.stored: dict[str, int] = {}  # msg id -> seq of the first success reply
        self.seq = 0
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> Responder:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        nc = await nats.connect(self.url)

        async def on_msg(msg: Any) -> None:
            mid = (msg.headers or {}).get("Nats-Msg-Id", "")
            n = self.attempts[mid] = self.attempts.get(mid, 0) + 1
            self.seq += 1
            bodies = self.replies(mid, n, self.seq)
            if bodies and b'"error"' not in bodies[0]:
                self.stored.setdefault(mid, self.seq)
            for body in bodies:
                await nc.publish(msg.reply, body)

        await nc.subscribe("commerce.>", cb=on_msg)
        await nc.flush()
        self._ready.set()
        await self._stop.wait()
        await nc.close()


@pytest.fixture
def bare_server() -> Iterator[NatsServer]:
    """A nats-server with JetStream but no COMMERCE stream (the responder answers instead)."""
    server = NatsServer().start()
    try:
        yield server
    finally:
        server.close()


def _engine(url: str, **options: Any) -> DeliveryEngine:
    sink = JetStreamSink(
        url,
        ensure_stream=False,
        ack_timeout_seconds=options.pop("ack_timeout_seconds", 5.0),
        connect_options={"reconnect_time_wait": 0.1, "connect_timeout": 1.0},
    )
    return DeliveryEngine([sink], exit_hook=False, **{**FAST, **options})


def _ok(seq: int, extra: bytes = b"") -> bytes:
    return b'{"stream":"COMMERCE","seq":%d%s}' % (seq, extra)


_SHAPES: dict[str, Replies] = {
    "plain": lambda mid, n, seq: [_ok(seq)],
    "duplicate-flag": lambda mid, n, seq: [_ok(seq, b',"duplicate":true')],
    "domain": lambda mid, n, seq: [b'{"stream":"COMMERCE","domain":"hub","seq":%d}' % seq],
    "key-order": lambda mid, n, seq: [b'{"seq":%d,"stream":"COMMERCE"}' % seq],
    "spaces": lambda mid, n, seq: [b'{ "stream": "COMMERCE", "seq": %d }' % seq],
    "extra-fields": lambda mid, n, seq: [_ok(seq, b',"batch":"b1","count":1,"val":"x"')],
    "two-acks-each": lambda mid, n, seq: [_ok(seq), _ok(seq, b',"duplicate":true')],
    # acks larger than nats-py's 64 KiB read: every frame is cut by the end of some read
    "padded-40k": lambda mid, n, seq: [_ok(seq, b',"pad":"' + b"x" * 40_000 + b'"')],
    "padded-odd": lambda mid, n, seq: [_ok(seq, b',"pad":"' + b"y" * (777 + seq % 5000) + b'"')],
}


@pytest.mark.parametrize("shape", sorted(_SHAPES))
def test_every_ack_shape_settles_each_event_once(bare_server: NatsServer, uid: str, shape: str) -> None:
    """A burst of 1,200 events (several sends in flight) acknowledged with acks of each shape: every event is
    exported once, none retried, dropped or rejected."""
    n = 1200
    with Responder(bare_server.url, _SHAPES[shape]) as responder:
        engine = _engine(bare_server.url, batch_size=40)
        try:
            pendings = [_pending(uid, i) for i in range(n)]
            engine.submit(pendings[0])
            assert engine.flush(10)
            for p in pendings[1:]:
                engine.submit(p)
            assert engine.flush(30), engine.stats()
            stats = engine.stats()
        finally:
            engine.shutdown(5)
    assert stats["exported"] == n and stats["retried"] == 0, stats
    assert stats["dropped"] == 0 and stats["rejected"] == 0, stats
    assert set(responder.stored) == {p.event_id for p in pendings}
    assert all(a == 1 for a in responder.attempts.values())


def test_error_acks_among_plain_ones_are_retried_until_stored(bare_server: NatsServer, uid: str) -> None:
    """Every 7th message's first ack is a JetStream error (503, maximum messages exceeded), in both the
    regex-settled run and the frame-by-frame loop: those are retried, the rest are settled as stored."""

    def replies(mid: str, n: int, seq: int) -> list[bytes]:
        if n == 1 and seq % 7 == 0:
            return [b'{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}']
        return [_ok(seq)]

    with Responder(bare_server.url, replies) as responder:
        engine = _engine(bare_server.url, batch_size=40, max_attempts=5)
        try:
            pendings = [_pending(uid, i) for i in range(1000)]
            engine.submit(pendings[0])
            assert engine.flush(10)
            for p in pendings[1:]:
                engine.submit(p)
            assert engine.flush(30), engine.stats()
            stats = engine.stats()
        finally:
            engine.shutdown(5)
    retried = sum(1 for a in responder.attempts.values() if a > 1)
    assert retried > 100
    assert stats["exported"] == 1000 and stats["retried"] == retried and stats["dropped"] == 0, stats
    assert set(responder.stored) == {p.event_id for p in pendings}


def test_a_permanent_error_ack_rejects_that_event_alone(bare_server: NatsServer, uid: str) -> None:
    """A 400 error ack (e.g. a subject the stream refuses) rejects its event, counted and reported."""
    bad = _pending(uid, 3).event_id

    def replies(mid: str, n: int, seq: int) -> list[bytes]:
        if mid == bad:
            return [b'{"error":{"code":400,"err_code":10060,"description":"expected stream does not match"}}']
        return [_ok(seq)]

    seen: list[BaseException] = []
    with Responder(bare_server.url, replies):
        engine = _engine(bare_server.url, batch_size=10, on_error=lambda e, p: seen.append(e))
        try:
            for i in range(50):
                engine.submit(_pending(uid, i))
            assert engine.flush(15) is False
            stats = engine.stats()
        finally:
            engine.shutdown(5)
    assert stats["exported"] == 49 and stats["rejected"] == 1 and stats["dropped"] == 0, stats
    assert len(seen) == 1 and "10060" in str(seen[0])


class _StartCountingSink(JetStreamSink):
    """The real sink, counting the sends started and the messages they carried."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.started = self.items = 0

    async def send(self, items: Any) -> Any:
        self.started += 1
        self.items += len(items)
        return await super().send(items)


def test_shutdown_counts_batches_acknowledged_behind_a_stalled_one_as_exported(
    bare_server: NatsServer, uid: str
) -> None:
    """Several sends in flight; one event's ack never comes (its batch stalls at the head of the lane), the later
    batches are acknowledged (their sends finished, waiting to be settled in send order). A shutdown then must
    not report those acknowledged events as dropped (undelivered, WARNING): only the stalled batch and what was
    never sent are; exported + dropped == submitted.

    Before the fix every batch in flight was counted dropped at shutdown, acknowledged or not."""
    stalled = _pending(uid, 150).event_id

    def replies(mid: str, n: int, seq: int) -> list[bytes]:
        return [] if mid == stalled else [_ok(seq)]

    with Responder(bare_server.url, replies) as responder:
        sink = JetStreamSink(
            bare_server.url,
            ensure_stream=False,
            ack_timeout_seconds=60.0,
            connect_options={"reconnect_time_wait": 0.1, "connect_timeout": 1.0},
        )
        engine = DeliveryEngine([sink], exit_hook=False, **{**FAST, "batch_size": 20})
        try:
            pendings = [_pending(uid, i) for i in range(300)]
            engine.submit(pendings[0])
            assert engine.flush(10)
            for p in pendings[1:]:
                engine.submit(p)
            depth = JetStreamSink.max_concurrent_sends
            rt = engine._rt
            assert rt is not None
            lane = rt.lanes[0]
            head: set[str] = set()

            def full() -> bool:
                """The stalled batch heads the lane with depth - 1 finished sends behind it."""
                try:
                    sending = list(lane.sending)
                except RuntimeError:  # changed by the delivery thread while copied: look again
                    return False
                if len(sending) < depth or not all(task.done() for _, task, _ in sending[1:]):
                    return False
                head.update(e.track.pending.event_id for e in sending[0][0])
                return stalled in head

            assert poll(full, 15), (len(lane.sending), len(responder.stored))
            engine.shutdown(0.3)
            stats = engine.stats()
        finally:
            engine.shutdown(5)
    acknowledged = set(responder.stored) - head  # acks of the stalled batch's other events: its send never ended
    assert len(acknowledged) >= 1 + (depth - 1) * 20  # the first event and the finished sends at least
    assert stats["exported"] == len(acknowledged), (stats, len(acknowledged))
    assert stats["exported"] + stats["dropped"] == 300, stats


def test_an_event_at_exactly_max_payload_is_sent_one_byte_over_is_rejected(nats_server: NatsServer, uid: str) -> None:
    """The sink's header-inclusive check against the server's ``max_payload``: payload + header block equal to
    the limit is sent and stored; one byte more is rejected alone, permanently, and never sent (which would
    make the server close the connection)."""

    async def run() -> tuple[list[Any], int]:
        sink = JetStreamSink(nats_server.url, ack_timeout_seconds=5.0)
        await sink.start()
        try:
            assert await sink.wait_ready(10)
            conn = sink._conn
            assert conn is not None and conn.nc is not None
            limit = conn.nc.max_payload
            items = []
            for i, extra in enumerate((0, 1, -1)):
                headers = {"Nats-Msg-Id": f"{uid}-mp-{i}"}
                hdr_len = len(prepare_message("commerce.x", b"", headers)[0][4])
                body = b"{" + b"x" * (limit + extra - hdr_len - 2) + b"}"
                message, _ = prepare_message("commerce.order.completed", body, headers)
                assert message[3] == limit + extra
                items.append(message)
            outcomes = await sink.send(items)
            again = await sink.send([items[0]])  # the connection survived: a duplicate of the stored one
            return [*outcomes, *again], limit
        finally:
            await sink.close()

    outcomes, _limit = asyncio.run(run())
    assert outcomes[0] is None and outcomes[2] is None and outcomes[3] is None, outcomes
    assert "max payload" in str(outcomes[1]) and type(outcomes[1]).__name__ == "PermanentDeliveryError"


def _kill_with_sends_in_flight(
    server: NatsServer, sink: _StartCountingSink, engine: DeliveryEngine, rest: list[Pending]
) -> None:
    """Freeze the broker (SIGSTOP), submit ``rest`` and wait until the lane has ``max_concurrent_sends`` sends in
    flight (plus the one that connected), then kill -9 the frozen broker and restart it (same port and store)."""
    import os
    import signal

    proc = server._proc
    assert proc is not None
    started = sink.started
    os.kill(proc.pid, signal.SIGSTOP)
    assert poll(lambda: _stopped(proc.pid), 5)
    for p in rest:
        engine.submit(p)
    assert poll(lambda: sink.started >= started + JetStreamSink.max_concurrent_sends, 15), sink.started
    server.kill()
    server.start()


def test_broker_sigkill_with_several_sends_in_flight_stores_each_event_once(uid: str) -> None:
    """kill -9 of the broker (same port and store, restarted at once) while a backlog goes out several batches
    at a time: every event is stored once (by Nats-Msg-Id), exported once, none dropped."""

    async def stored_ids(url: str) -> list[str]:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            state = (await js.stream_info("COMMERCE")).state
            out = []
            for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
                msg = await js.get_msg("COMMERCE", seq)
                out.append((msg.headers or {}).get("Nats-Msg-Id", ""))
            return out
        finally:
            await nc.close()

    n = 1500
    server = NatsServer().start()
    try:
        sink = _StartCountingSink(
            server.url, ack_timeout_seconds=2.0, connect_options={"reconnect_time_wait": 0.1, "connect_timeout": 1.0}
        )
        engine = DeliveryEngine([sink], exit_hook=False, **{**FAST, "batch_size": 50, "queue_size": 10_000})
        try:
            pendings = [_pending(uid, i) for i in range(n)]
            engine.submit(pendings[0])
            assert engine.flush(10)
            _kill_with_sends_in_flight(server, sink, engine, pendings[1:])
            assert engine.flush(60), engine.stats()
            stats = engine.stats()
        finally:
            engine.shutdown(5)
        ids = asyncio.run(stored_ids(server.url))
    finally:
        server.close()
    mine = ids  # a server of this test alone
    assert len(mine) == len(set(mine)) == n
    assert set(mine) == {p.event_id for p in pendings}
    assert stats["exported"] == n and stats["dropped"] == 0 and stats["rejected"] == 0, stats
    print(f"\n[adversary] kill -9 mid-burst: retried {stats['retried']}")


def _stopped(pid: int) -> bool:
    """True once ``pid`` is stopped by a signal (``/proc/<pid>/stat`` state ``T``)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t")
    except OSError:
        return False


@pytest.mark.parametrize("mode", ["spill", "wal"])
def test_sends_in_flight_at_shutdown_are_spooled_and_replayed_once(tmp_path: Any, uid: str, mode: str) -> None:
    """The broker freezes (SIGSTOP) with several sends in flight; shutdown(0.3) spools every event not
    acknowledged — the in-flight batches included — and drops none; after the broker resumes, a new engine
    on the same spool replays them: each event is stored exactly once."""
    import os
    import signal

    from otel_commerce._delivery._spool import Spool, SpoolKey
    from otel_commerce._model._pending import decode_pending, encode_pending

    async def stored_ids(url: str) -> list[str]:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            state = (await js.stream_info("COMMERCE")).state
            out = []
            for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
                msg = await js.get_msg("COMMERCE", seq)
                out.append((msg.headers or {}).get("Nats-Msg-Id", ""))
            return out
        finally:
            await nc.close()

    n = 3000
    server = NatsServer().start()
    try:

        def engine_on_spool() -> DeliveryEngine:
            sink = JetStreamSink(
                server.url,
                ack_timeout_seconds=5.0,
                connect_options={"reconnect_time_wait": 0.1, "connect_timeout": 1.0},
            )
            spool = Spool(
                tmp_path, SpoolKey("svc", (sink.spool_identity(),)), mode=mode, encode=encode_pending,
                decode=decode_pending,
            )  # fmt: skip
            return DeliveryEngine(
                [sink], spool=spool, exit_hook=False, **{**FAST, "batch_size": 50, "queue_size": 10_000}
            )

        engine = engine_on_spool()
        pendings = [_pending(uid, i) for i in range(n)]
        engine.submit(pendings[0])
        assert engine.flush(10)
        for p in pendings[1:]:
            engine.submit(p)
        assert poll(lambda: engine.stats()["exported"] >= n // 10, 30)
        proc = server._proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            assert poll(lambda: _stopped(proc.pid), 5)
            engine.shutdown(0.3)
            first = engine.stats()
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        assert first["dropped"] == 0 and first["exported"] + first["spooled"] == n, first
        again = engine_on_spool()
        try:
            again.replay_spool()
            assert poll(lambda: again.stats()["exported"] >= first["spooled"], 30), again.stats()
            second = again.stats()
        finally:
            again.shutdown(5)
        ids = asyncio.run(stored_ids(server.url))
    finally:
        server.close()
    assert len(ids) == len(set(ids)) == n, (len(ids), len(set(ids)), first, second)
    assert set(ids) == {p.event_id for p in pendings}
    assert second["dropped"] == 0 and second["rejected"] == 0, second


def test_one_outage_backs_off_once_not_once_per_batch_in_flight(uid: str) -> None:
    """Several sends in flight all fail from one cause (every first attempt is answered with a 503 error ack,
    or with no responders while the responder subscribes); their retries succeed. The lane backs off once for
    them (as with one send in flight) and resumes, never one growing backoff per failed batch in series
    (initial 2 s: four in a row would take >= 1 + 2 + 4 + 8 = 15 s before the last retried batch is settled).

    The 200 events are queued before the broker starts: the lane leaves with four full batches at once."""

    def replies(mid: str, n: int, seq: int) -> list[bytes]:
        if n == 1:
            return [b'{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}']
        return [_ok(seq)]

    server = NatsServer()  # not started yet
    sink = _StartCountingSink(
        server.url,
        ensure_stream=False,
        ack_timeout_seconds=5.0,
        connect_options={"reconnect_time_wait": 0.1, "connect_timeout": 1.0},
    )
    engine = DeliveryEngine(
        [sink],
        exit_hook=False,
        linger_seconds=0.0,
        batch_size=50,
        backoff_initial_seconds=2.0,
        backoff_max_seconds=60.0,
    )
    try:
        for i in range(200):
            engine.submit(_pending(uid, i))
        server.start()
        with Responder(server.url, replies) as responder:
            assert engine.flush(10), (engine.stats(), sink.started)
            stats = engine.stats()
    finally:
        engine.shutdown(5)
        server.close()
    assert stats["exported"] == 200 and stats["dropped"] == 0, stats
    assert stats["retried"] >= 200, stats  # every batch of the first round failed
    assert sink.started >= 2 * JetStreamSink.max_concurrent_sends and len(responder.stored) == 200
