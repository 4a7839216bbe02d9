"""Contract tests of the private nats-py calls in ``otel_commerce/_sinks/_jetstream.py`` (nats-py is pinned to
the tested minor range in pyproject.toml). Each test fails when an attribute the sink relies on changes name,
signature or meaning on the nats-py under test — never a silent loss."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.protocol import parser as nats_parser

from otel_commerce._cli._natsserver import NatsServer
from otel_commerce._errors import DeliveryError, TransientDeliveryError
from otel_commerce._sinks import _jetstream
from otel_commerce._sinks._jetstream import JetStreamSink, header_block, hpub_frame, hpub_line, prepare_message


def test_every_private_attribute_exists_with_the_expected_signature() -> None:
    for name in ("_send_command", "_flush_pending", "_process_msg"):
        assert name in _jetstream.NATS_PRIVATE_ATTRIBUTES
        assert inspect.iscoroutinefunction(getattr(NATS, name)), name
    assert list(inspect.signature(NATS._send_command).parameters) == ["self", "cmd", "priority"]
    assert list(inspect.signature(NATS._flush_pending).parameters) == ["self", "force_flush"]
    assert list(inspect.signature(NATS._process_msg).parameters) == [
        "self",
        "sid",
        "subject",
        "reply",
        "data",
        "headers",
    ]
    nc = NATS()
    assert hasattr(nc, "_flush_queue") and isinstance(nc.stats, dict)
    assert {"out_msgs", "out_bytes", "in_msgs", "in_bytes"} <= set(nc.stats)


def test_the_parser_dispatches_through_the_client_instance() -> None:
    """The ack hook is an attribute of the Client instance: the parser must look it up there, per message."""
    source = inspect.getsource(nats_parser.Parser.parse)
    assert "await self.nc._process_msg(sid, subject, reply, payload, hdr)" in source


async def test_frames_are_the_bytes_nats_py_publish_writes() -> None:
    """Header block + HPUB line of ours == what ``Client.publish`` queues for the same message (a spy on the
    real client's outgoing queue, then the message really goes to the server)."""
    with NatsServer() as server:
        nc = await nats.connect(server.url)
        try:
            written: list[bytes] = []
            send_command = nc._send_command

            async def spy(cmd: bytes, priority: bool = False) -> None:
                written.append(bytes(cmd))
                await send_command(cmd, priority)

            nc._send_command = spy  # type: ignore[method-assign]
            headers = {"Nats-Msg-Id": " 0190-abc ", "traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01",
                       "tracestate": "k=v\r\nx", " ": "skipped"}  # fmt: skip
            payload = b'{"id":"o-1"}'
            await nc.publish("commerce.order.completed", payload, reply="_INBOX.x.1", headers=headers)
            (subject, body, _, wire_size, hdr), _size = prepare_message("commerce.order.completed", payload, headers)
            assert written == [hpub_line(subject, b"_INBOX.x.1", len(hdr), wire_size) + hdr + body + b"\r\n"]
            assert written == [hpub_frame(subject, b"_INBOX.x.", 1, hdr, body)]  # the sink's one-operation frame
            assert header_block(None) == b""
        finally:
            await nc.close()


async def test_acks_with_headers_still_reach_the_sink_through_nats_py() -> None:
    """No stream: the server answers ``NATS/1.0 503`` (an ack with headers), which the hook hands to nats-py's
    own ``_process_msg`` and the subscription: the sink reports a retryable 503 instead of waiting for a timeout."""
    with NatsServer() as server:
        sink = JetStreamSink(server.url, ensure_stream=False, ack_timeout_seconds=3.0)
        await sink.start()
        try:
            assert await sink.wait_ready(10)
            conn = sink._conn
            assert conn is not None and conn.nc is not None
            assert conn.nc._process_msg.__qualname__.endswith("on_msg")  # the hook is installed
            item, _ = prepare_message("commerce.order.completed", b"{}", {"Nats-Msg-Id": "c-503"})
            (outcome,) = await sink.send([item])
            assert isinstance(outcome, TransientDeliveryError) and outcome.status == 503, outcome
            assert not conn.waiting
        finally:
            await sink.close()


def test_the_client_feeds_the_parser_through_its_instance() -> None:
    """The fast ack path wraps the parser instance's ``parse``: nats-py must call it through ``self._ps`` and
    keep one ``Parser`` (``buf`` / ``state``) per client, reset in place on reconnect."""
    assert "await self._ps.parse(b)" in inspect.getsource(NATS._read_loop)
    assert list(inspect.signature(nats_parser.Parser.parse).parameters) == ["self", "data"]
    parser = nats_parser.Parser(None)
    assert parser.buf == bytearray() and parser.state == nats_parser.AWAITING_CONTROL_LINE
    client_source = inspect.getsource(NATS)
    assert client_source.count("self._ps") - client_source.count("self._ps.") == 1  # set once, in __init__
    assert "self._ps.reset()" in client_source
    parser.buf.extend(b"MSG _INBOX.x.1 1 2")  # a cut frame kept back by the fast path: a reconnect drops it
    parser.reset()
    assert parser.buf == bytearray() and parser.state == nats_parser.AWAITING_CONTROL_LINE


async def test_acks_split_anywhere_are_all_settled_in_order() -> None:
    """The raw protocol bytes of acks (ours, another subscription's, a PING, an ack with headers), cut at
    every offset into two reads: every ack of ours is settled once, the rest reaches nats-py's parser."""
    with NatsServer() as server:
        sink = JetStreamSink(server.url, ensure_stream=False)
        await sink.start()
        try:
            assert await sink.wait_ready(10)
            conn = sink._conn
            assert conn is not None and conn.nc is not None
            nc, inbox = conn.nc, conn.inbox
            assert nc._ps.parse.__qualname__.endswith("fast_parse")  # the hook is installed
            sid = next(s for s, sub in nc._subs.items() if sub.subject == inbox + ".*")
            ok = b'{"stream":"COMMERCE","seq":1}'
            dup = b'{"stream":"COMMERCE","seq":1,"duplicate":true}'
            err = b'{"error":{"code":400,"err_code":10060,"description":"bad"}}'
            hdr = b"NATS/1.0 503\r\n\r\n"

            def msg(counter: int, body: bytes, s: int = sid) -> bytes:
                return b"MSG %s.%d %d %d\r\n%s\r\n" % (inbox.encode(), counter, s, len(body), body)

            stream = (
                msg(1, ok) + msg(2, dup) + msg(3, err) + msg(99, ok, s=sid + 1000) + b"PING\r\n" + msg(4, ok)
                + b"HMSG %s.5 %d %d %d\r\n%s\r\n" % (inbox.encode(), sid, len(hdr), len(hdr), hdr)
                + msg(6, ok) + msg(1, err)  # a second ack for a settled message is ignored
            )  # fmt: skip
            for cut in range(len(stream) + 1):
                results: list[Any] = [object()] * 6
                base = conn.counter
                batch = _jetstream._AckBatch(results, 0, base, 6)
                batch.remaining = 6
                conn.current = batch
                shifted = stream.replace(f"{inbox}.".encode(), f"{inbox}.#".encode())
                for k in range(6, 0, -1):
                    shifted = shifted.replace(f"{inbox}.#{k} ".encode(), f"{inbox}.{base + k} ".encode())
                await nc._ps.parse(shifted[:cut])
                await nc._ps.parse(shifted[cut:])
                for _ in range(3):
                    await asyncio.sleep(0)  # the 503 goes through nats-py's subscription task
                await asyncio.wait_for(batch.done.wait(), 5)
                assert results[0] is None and results[1] is None and results[3] is None and results[5] is None
                assert isinstance(results[2], DeliveryError) and not isinstance(results[2], TransientDeliveryError)
                assert isinstance(results[4], TransientDeliveryError) and results[4].status == 503
                assert nc._ps.state == nats_parser.AWAITING_CONTROL_LINE and not nc._ps.buf, cut
                conn.counter = base + 6
            conn.current = None
        finally:
            await sink.close()


async def test_plain_acks_cut_anywhere_stay_on_the_fast_path(monkeypatch: Any) -> None:
    """A read that ends inside an ack frame leaves the cut frame in the parser's buffer and the next read puts it
    back in front: every plain ack is settled by the sink's own loop, none by nats-py's parser (which would
    decode it through ``_ack_data_outcome``)."""
    slow: list[bytes] = []
    outcome = _jetstream._ack_data_outcome
    monkeypatch.setattr(_jetstream, "_ack_data_outcome", lambda data: slow.append(data) or outcome(data))
    with NatsServer() as server:
        sink = JetStreamSink(server.url, ensure_stream=False)
        await sink.start()
        try:
            assert await sink.wait_ready(10)
            conn = sink._conn
            assert conn is not None and conn.nc is not None
            nc, inbox = conn.nc, conn.inbox
            sid = next(s for s, sub in nc._subs.items() if sub.subject == inbox + ".*")
            for cut in range(1, 200):
                base = conn.counter
                results: list[Any] = [object()] * 3
                batch = _jetstream._AckBatch(results, 0, base, 3)
                batch.remaining = 3
                conn.current = batch
                acks = [b'{"stream":"COMMERCE","seq":%d}' % (base + k) for k in (1, 2)]
                acks.append(b'{"stream":"COMMERCE","seq":%d,"duplicate":true}' % (base + 3))
                stream = b"".join(
                    b"MSG %s.%d %d %d\r\n%s\r\n" % (inbox.encode(), base + k, sid, len(a), a)
                    for k, a in enumerate(acks, 1)
                )
                await nc._ps.parse(stream[:cut])
                await nc._ps.parse(stream[cut:])
                assert batch.done.is_set() and results == [None, None, None], cut
                assert nc._ps.state == nats_parser.AWAITING_CONTROL_LINE and not nc._ps.buf, cut
                conn.counter = base + 3
            conn.current = None
            assert slow == []
        finally:
            await sink.close()


async def test_runs_of_plain_acks_settle_each_awaited_message_once_across_chunks() -> None:
    """Reads of plain acks back to back: in send order across two chunks in flight, out of order, with a repeated
    ack and a late one (a counter of no chunk) — each awaited message settled once, the others untouched, the
    nats-py message counters exact; and the same streams cut at many offsets."""
    with NatsServer() as server:
        sink = JetStreamSink(server.url, ensure_stream=False)
        await sink.start()
        try:
            assert await sink.wait_ready(10)
            conn = sink._conn
            assert conn is not None and conn.nc is not None
            nc, inbox = conn.nc, conn.inbox
            sid = next(s for s, sub in nc._subs.items() if sub.subject == inbox + ".*")

            def msg(counter: int) -> bytes:
                body = b'{"stream":"COMMERCE","seq":%d}' % counter
                return b"MSG %s.%d %d %d\r\n%s\r\n" % (inbox.encode(), counter, sid, len(body), body)

            orders = {
                "in order, two chunks": [1, 2, 3, 4, 5, 6, 7],
                "out of order": [3, 1, 2, 7, 6, 5, 4],
                "repeated and late": [1, 2, 2, 3, 0, 4, 5, 6, 7, 9, 7],
                "in order, one missing": [1, 2, 3, 5, 6, 7],
                "in order, one settled before": [1, 2, 3, 4, 5, 6, 7],
            }
            for label, order in orders.items():
                for cut in (None, *range(1, 3 * len(msg(1)), 7)):
                    base = conn.counter
                    first: list[Any] = [object()] * 4
                    second: list[Any] = [object()] * 5
                    a = _jetstream._AckBatch(first, 0, base, 4)  # counters base+1 .. base+4
                    b = _jetstream._AckBatch(second, 2, base + 4, 3)  # base+5 .. base+7, results[2:5]
                    a.remaining, b.remaining = 4, 3
                    conn.chunks = [a, b]
                    if label == "in order, one settled before":
                        a.resolve(base + 2, None)  # its ack came earlier: the run's copy is ignored
                    stream = b"".join(msg(base + k) for k in order)
                    in_msgs = nc.stats["in_msgs"]
                    if cut is None:
                        await nc._ps.parse(stream)
                    else:
                        await nc._ps.parse(stream[:cut])
                        await nc._ps.parse(stream[cut:])
                    want = {k for k in order if 1 <= k <= 7}
                    assert nc.stats["in_msgs"] - in_msgs == len(order), (label, cut)
                    assert [r is None for r in first] == [k in want for k in (1, 2, 3, 4)], (label, cut)
                    assert [r is None for r in second[2:]] == [k in want for k in (5, 6, 7)], (label, cut)
                    assert second[0] is not None and second[1] is not None  # not this chunk's
                    assert a.remaining == 4 - len(want & {1, 2, 3, 4}) and b.remaining == 3 - len(want & {5, 6, 7})
                    assert a.done.is_set() == (a.remaining == 0) and b.done.is_set() == (b.remaining == 0)
                    assert nc._ps.state == nats_parser.AWAITING_CONTROL_LINE and not nc._ps.buf, (label, cut)
                    conn.counter = base + 7
            conn.chunks = []
        finally:
            await sink.close()
