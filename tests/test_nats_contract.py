"""Contract tests of the private nats-py calls in ``otel_commerce/_sinks/_jetstream.py`` (nats-py is pinned to
the tested minor range in pyproject.toml). Each test fails when an attribute the sink relies on changes name,
signature or meaning on the nats-py under test — never a silent loss."""

from __future__ import annotations

import inspect

import nats
from nats.aio.client import Client as NATS
from nats.protocol import parser as nats_parser

from otel_commerce._cli._natsserver import NatsServer
from otel_commerce._errors import TransientDeliveryError
from otel_commerce._sinks import _jetstream
from otel_commerce._sinks._jetstream import JetStreamSink, header_block, hpub_line, prepare_message


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
