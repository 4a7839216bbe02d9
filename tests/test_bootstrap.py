"""bootstrap(): create, check, reconcile the COMMERCE stream on a real nats-server."""

from __future__ import annotations

import logging

import pytest
from nats.js.api import StreamConfig
from nats.js.client import JetStreamContext

from otel_commerce import Publisher, StreamError, bootstrap
from otel_commerce._cli._natsserver import NatsServer


@pytest.fixture
def nats_server(fresh_nats_server: NatsServer) -> NatsServer:
    """Every test here starts from a server of its own with no stream (never a deleted-and-re-created one)."""
    return fresh_nats_server


async def test_creates_stream_with_our_duplicate_window(js: JetStreamContext) -> None:
    """A missing stream is created with subjects commerce.> and a 10-minute duplicate window."""
    result = await bootstrap(js)
    assert result.action == "created"
    info = await js.stream_info("COMMERCE")
    assert info.config.subjects == ["commerce.>"]
    assert info.config.duplicate_window == pytest.approx(600.0)


async def test_is_idempotent(js: JetStreamContext) -> None:
    """A second bootstrap finds nothing to do."""
    await bootstrap(js)
    result = await bootstrap(js)
    assert result.action == "unchanged" and result.differences == []


async def test_existing_go_stream_is_checked_and_warned(js: JetStreamContext, caplog: pytest.LogCaptureFixture) -> None:
    """A stream made by Go (2-minute window) is left alone and the exact difference is logged."""
    await js.add_stream(StreamConfig(name="COMMERCE", subjects=["commerce.>"], duplicate_window=120))
    with caplog.at_level(logging.WARNING, logger="otel_commerce"):
        result = await bootstrap(js)
    assert result.action == "differs"
    assert result.differences == ["duplicate_window 120s is shorter than 600s"]
    assert "duplicate_window 120s is shorter than 600s" in caplog.text
    assert (await js.stream_info("COMMERCE")).config.duplicate_window == pytest.approx(120.0)


async def test_reconcile_narrow_stream_keeps_data(js: JetStreamContext) -> None:
    """reconcile=True widens commerce.order.> to commerce.>, keeps other subjects, storage and messages."""
    await js.add_stream(
        StreamConfig(name="COMMERCE", subjects=["commerce.order.>", "legacy.orders"], duplicate_window=120)
    )
    await js.publish("commerce.order.created", b'{"id":"o1"}')
    await js.publish("legacy.orders", b"{}")
    result = await bootstrap(js, reconcile=True)
    assert result.action == "updated"
    assert any("do not cover" in d for d in result.differences)
    info = await js.stream_info("COMMERCE")
    assert sorted(info.config.subjects or []) == ["commerce.>", "legacy.orders"]
    assert info.config.duplicate_window == pytest.approx(600.0)
    assert info.state.messages == 2
    ack = await Publisher(js).publish_referral_claimed("acme", "u1", "u2", "R")
    assert ack is not None and ack.seq == 3
    assert (await bootstrap(js)).action == "unchanged"


async def test_reconcile_refused_by_overlapping_stream(js: JetStreamContext) -> None:
    """When another stream owns overlapping subjects the server refuses and bootstrap says why."""
    await js.add_stream(StreamConfig(name="ORDERS", subjects=["commerce.order.>"]))
    try:
        with pytest.raises(StreamError, match="cannot create stream COMMERCE"):
            await bootstrap(js)
        await js.add_stream(StreamConfig(name="COMMERCE", subjects=["commerce.cart.>"]))
        with pytest.raises(StreamError, match="cannot reconcile"):
            await bootstrap(js, reconcile=True)
    finally:
        await js.delete_stream("ORDERS")


async def test_rejects_nonpositive_window(js: JetStreamContext) -> None:
    """A zero duplicate window is a clear error."""
    with pytest.raises(StreamError):
        await bootstrap(js, duplicate_window=0)
