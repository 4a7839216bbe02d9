"""Forwarding stored events to the COMMERCE stream (real nats-server): dedup ids and traceparent."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import orjson
from collector_server import running_collector
from nats.js.client import JetStreamContext

from otel_commerce._cli._natsserver import NatsServer
from otel_commerce.subjects import STREAM_NAME

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


async def wait_for_messages(js: JetStreamContext, count: int, timeout_seconds: float = 10.0) -> int:
    deadline = time.monotonic() + timeout_seconds
    seen = -1
    while time.monotonic() < deadline:
        try:
            seen = (await js.stream_info(STREAM_NAME)).state.messages
        except Exception:
            seen = -1
        if seen >= count:
            return seen
        await asyncio.sleep(0.02)  # poll interval of a deadline-bounded wait
    raise AssertionError(f"stream has {seen} message(s), expected {count}")


async def test_stored_events_are_forwarded_once_with_trace_context(
    js: JetStreamContext, nats_server: NatsServer, tmp_path: Path
) -> None:
    """Every stored event reaches COMMERCE as an envelope with Nats-Msg-Id = event_id and a traceparent; retries don't."""
    with running_collector(tmp_path / "fwd.db", nats_url=nats_server.url) as (server, store):
        async with httpx.AsyncClient(base_url=server.url) as http:
            event = {
                "event": "order_completed",
                "organization_id": "org-1",
                "order_id": "o-1",
                "revenue": 9.5,
                "properties": {"event_id": "fwd-1", "trace_id": TRACE, "span_id": SPAN, "currency": "USD"},
            }
            for _ in range(3):
                assert (await http.post("/event", json=event)).status_code == 200
            r = await http.post("/events", json={"events": [{"event": "referral_claimed", "event_id": "fwd-2"}]})
            assert r.status_code == 200
            await wait_for_messages(js, 2)
            health = (await http.get("/health")).json()
        sub = await js.subscribe("commerce.>", ordered_consumer=True)
        msgs = [await sub.next_msg(timeout=5) for _ in range(2)]
        await sub.unsubscribe()
        assert store.pending_count() == 0
    assert health["forwarding"]["pending"] == 0
    by_subject = {m.subject: m for m in msgs}
    order = by_subject["commerce.order.completed"]
    assert order.headers is not None and order.headers["Nats-Msg-Id"] == "fwd-1"
    assert order.headers["traceparent"] == f"00-{TRACE}-{SPAN}-01"
    envelope = orjson.loads(order.data)
    assert (envelope["type"], envelope["id"], envelope["event_id"], envelope["trace_id"]) == (
        "order.completed",
        "o-1",
        "fwd-1",
        TRACE,
    )
    assert by_subject["commerce.referral.claimed"].headers["Nats-Msg-Id"] == "fwd-2"  # type: ignore[index]
    assert (await js.stream_info(STREAM_NAME)).state.messages == 2
