"""Forwarding stored events to the COMMERCE stream (real nats-server): dedup ids and traceparent."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
from collector_server import running_collector
from nats.js.client import JetStreamContext
from streams import stored, wait_stored

from otel_commerce._cli._natsserver import NatsServer

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


async def test_stored_events_are_forwarded_once_with_trace_context(
    js: JetStreamContext, nats_server: NatsServer, tmp_path: Path, uid: str
) -> None:
    """Every stored event reaches COMMERCE as an envelope with Nats-Msg-Id = event_id and a traceparent; retries don't."""
    with running_collector(tmp_path / "fwd.db", nats_url=nats_server.url) as (server, store):
        async with httpx.AsyncClient(base_url=server.url) as http:
            event = {
                "event": "order_completed",
                "organization_id": "org-1",
                "order_id": f"o-{uid}",
                "revenue": 9.5,
                "properties": {"event_id": f"fwd-1-{uid}", "trace_id": TRACE, "span_id": SPAN, "currency": "USD"},
            }
            for _ in range(3):
                assert (await http.post("/event", json=event)).status_code == 200
            r = await http.post("/events", json={"events": [{"event": "referral_claimed", "event_id": f"fwd-2-{uid}"}]})
            assert r.status_code == 200
            msgs = await wait_stored(js, uid, 2)
            health = (await http.get("/health")).json()
        assert store.pending_count() == 0
    assert health["forwarding"]["pending"] == 0
    by_subject = {m.subject: m for m in msgs}
    order = by_subject["commerce.order.completed"]
    assert order.headers is not None and order.headers["Nats-Msg-Id"] == f"fwd-1-{uid}"
    assert order.headers["traceparent"] == f"00-{TRACE}-{SPAN}-01"
    envelope = orjson.loads(order.data)
    assert (envelope["type"], envelope["id"], envelope["event_id"], envelope["trace_id"]) == (
        "order.completed",
        f"o-{uid}",
        f"fwd-1-{uid}",
        TRACE,
    )
    assert by_subject["commerce.referral.claimed"].headers["Nats-Msg-Id"] == f"fwd-2-{uid}"  # type: ignore[index]
    assert len(await stored(js, uid)) == 2  # the retries were not stored again
