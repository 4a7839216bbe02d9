"""The collector's Hanzo API over real HTTP: payloads of facts §4, dedup, auth and bad input."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from collector_server import CollectorServer, running_collector

from otel_commerce.collector import EventStore

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"

# What the Go client's emit_order_completed sends (facts §4): items as a JSON *string*.
GO_ORDER_COMPLETED = {
    "event": "order_completed",
    "distinct_id": "user-1",
    "organization_id": "org-1",
    "order_id": "ord-1",
    "revenue": 59.98,
    "quantity": 2,
    "properties": {
        "currency": "USD",
        "items": '[{"product_id":"p1","product_name":"Tee","sku":"T1","quantity":2,"price":29.99}]',
        "item_count": 1,
        "status": "completed",
        "email": "a@example.com",
    },
}


def go_batch() -> list[dict[str, object]]:
    return [
        {
            "event": "referral_link_created",
            "distinct_id": "u2",
            "organization_id": "org-1",
            "properties": {"referral_code": "R1", "referral_url": "https://x/r/R1"},
        },
        {
            "event": "referral_claimed",
            "distinct_id": "u3",
            "properties": {"referrer_id": "u2", "referee_id": "u3", "referral_code": "R1"},
        },
        {
            "event": "contributor_payout_sent",
            "revenue": 12.5,
            "properties": {"payout_id": "po-1", "period_month": "2025-01", "amount": 12.5, "currency": "USD"},
        },
    ]


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[tuple[CollectorServer, EventStore]]:
    with running_collector(tmp_path / "events.db") as pair:
        yield pair


def test_single_go_event_is_stored_with_catalog_type(collector: tuple[CollectorServer, EventStore]) -> None:
    """A Go-shaped order_completed answers 200 {"status":"ok"} and is stored as order.completed with its ids."""
    server, store = collector
    payload = {
        **GO_ORDER_COMPLETED,
        "properties": {
            **GO_ORDER_COMPLETED["properties"],  # type: ignore[dict-item]
            "event_id": "e-1",
            "trace_id": TRACE,
            "span_id": SPAN,
        },
    }
    r = httpx.post(server.url + "/event", json=payload)
    assert r.status_code == 200 and r.json()["status"] == "ok"
    [event] = store.query()
    assert (event.type, event.name, event.source, event.event_id) == (
        "order.completed",
        "order_completed",
        "hanzo",
        "e-1",
    )
    assert (event.user_id, event.organization_id, event.id) == ("user-1", "org-1", "ord-1")
    assert (event.trace_id, event.span_id) == (TRACE, SPAN)
    assert event.payload == payload
    assert event.envelope["data"]["revenue"] == 59.98 and event.envelope["trace_id"] == TRACE


def test_batch_under_analytics_prefix(collector: tuple[CollectorServer, EventStore]) -> None:
    """POST /v1/analytics/events stores every event and answers {"status":"ok","count":N}; health works there too."""
    server, store = collector
    r = httpx.post(server.url + "/v1/analytics/events", json={"events": go_batch()})
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and r.json()["count"] == 3
    assert sorted(e.type for e in store.query()) == [
        "contributor.payout_sent",
        "referral.claimed",
        "referral.link_created",
    ]
    assert httpx.get(server.url + "/v1/analytics/health").json()["status"] == "ok"


def test_retried_event_id_is_stored_once(collector: tuple[CollectorServer, EventStore]) -> None:
    """The same properties.event_id (or top-level event_id) posted again, alone or in a batch, is stored once."""
    server, store = collector
    a = {**GO_ORDER_COMPLETED, "properties": {"event_id": "dup-1"}}
    b = {"event": "referral_claimed", "event_id": "dup-2"}
    for _ in range(3):
        assert httpx.post(server.url + "/event", json=a).status_code == 200
        assert httpx.post(server.url + "/event", json=b).status_code == 200
    r = httpx.post(server.url + "/events", json={"events": [a, b, a]})
    assert r.status_code == 200 and r.json()["stored"] == 0 and r.json()["duplicates"] == 3
    assert sorted(e.event_id for e in store.query()) == ["dup-1", "dup-2"]


def test_events_without_event_id_are_never_merged(collector: tuple[CollectorServer, EventStore]) -> None:
    """Two identical posts without an event_id are two events (the documented choice: no body hashing)."""
    server, store = collector
    for _ in range(2):
        assert httpx.post(server.url + "/event", json=go_batch()[0]).status_code == 200
    events = store.query()
    assert len(events) == 2 and events[0].event_id != events[1].event_id


def test_batch_with_invalid_event_stores_the_valid_ones(collector: tuple[CollectorServer, EventStore]) -> None:
    """A batch with bad events answers 400 naming their indexes; the valid ones are stored, and a re-send is harmless."""
    server, store = collector
    good = [
        {**e, "properties": {**e["properties"], "event_id": f"g{i}"}}  # type: ignore[dict-item]
        for i, e in enumerate(go_batch())
    ]
    batch = [good[0], {"distinct_id": "no-event-name"}, good[1], {"event": "x", "revenue": "12"}, good[2]]
    r = httpx.post(server.url + "/events", json={"events": batch})
    assert r.status_code == 400
    body = r.json()
    assert [x["index"] for x in body["rejected"]] == [1, 3]
    assert "event" in body["rejected"][0]["error"] and "revenue" in body["rejected"][1]["error"]
    assert "[1]" in body["error"] and "[3]" in body["error"]
    assert body["count"] == 3
    assert store.count() == 3
    r = httpx.post(server.url + "/events", json={"events": good})  # what a splitting client re-sends
    assert r.status_code == 200 and store.count() == 3


def test_traceparent_header_gives_trace_ids(collector: tuple[CollectorServer, EventStore]) -> None:
    """Without ids in the event, the request's traceparent header supplies trace_id and span_id."""
    server, store = collector
    r = httpx.post(server.url + "/event", json=go_batch()[0], headers={"traceparent": f"00-{TRACE}-{SPAN}-01"})
    assert r.status_code == 200
    [event] = store.query(trace_id=TRACE)
    assert event.span_id == SPAN


def test_auth_token_required_when_configured(tmp_path: Path) -> None:
    """With an auth token, routes answer 401 without the right bearer token; /health stays open."""
    with running_collector(tmp_path / "a.db", auth_token="s3cret") as (server, store):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
            r = httpx.post(server.url + "/event", json=go_batch()[0], headers=headers)
            assert r.status_code == 401 and "bearer" in r.json()["error"]
        assert (
            httpx.post(server.url + "/v1/logs", content=b"", headers={"content-type": "application/json"}).status_code
            == 401
        )
        assert store.count() == 0
        r = httpx.post(server.url + "/event", json=go_batch()[0], headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200 and store.count() == 1
        assert httpx.get(server.url + "/health").status_code == 200


def test_no_auth_by_default(collector: tuple[CollectorServer, EventStore]) -> None:
    """Without an auth token (Hanzo's behaviour) any client may post, with or without a header."""
    server, store = collector
    assert (
        httpx.post(server.url + "/event", json=go_batch()[0], headers={"Authorization": "Bearer x"}).status_code == 200
    )
    assert httpx.post(server.url + "/event", json=go_batch()[1]).status_code == 200
    assert store.count() == 2


@pytest.mark.parametrize(
    ("content", "headers", "status", "needle"),
    [
        (b"{not json", {}, 400, "malformed JSON"),
        (b"[1, 2]", {}, 400, "JSON object"),
        (orjson.dumps({"distinct_id": "u"}), {}, 400, "event"),
        (orjson.dumps({"event": "x", "properties": [1]}), {}, 400, "properties"),
        (orjson.dumps({"event": "x", "quantity": 1.5}), {}, 400, "quantity"),
        (orjson.dumps({"event": "x", "timestamp": "yesterday"}), {}, 400, "timestamp"),
        (orjson.dumps({"event": "x", "properties": {"trace_id": "xyz"}}), {}, 400, "trace_id"),
        (orjson.dumps({"event": "x"}), {"content-type": "text/xml"}, 415, "Content-Type"),
        (orjson.dumps({"event": "x"}), {"content-encoding": "br"}, 415, "Content-Encoding"),
        (b"\x1f\x8b garbage", {"content-encoding": "gzip"}, 400, "gzip"),
        (b"x" * 5000, {}, 413, "limit"),
        (
            gzip.compress(orjson.dumps({"event": "x", "properties": {"pad": "y" * 5000}})),
            {"content-encoding": "gzip"},
            413,
            "limit",
        ),
    ],
)
def test_bad_input_is_refused_and_nothing_stored(
    tmp_path: Path, content: bytes, headers: dict[str, str], status: int, needle: str
) -> None:
    """Malformed JSON, wrong types, bad encodings and oversize bodies get a clear 4xx JSON error; the server keeps serving."""
    with running_collector(tmp_path / "b.db", max_body_bytes=4096) as (server, store):
        hdrs = {"content-type": "application/json", **headers}
        r = httpx.post(server.url + "/event", content=content, headers=hdrs)
        assert r.status_code == status, r.text
        assert needle in r.json()["error"]
        assert store.count() == 0
        ok = httpx.post(
            server.url + "/event",
            content=gzip.compress(orjson.dumps(go_batch()[0])),
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )
        assert ok.status_code == 200 and store.count() == 1


def test_bad_batch_shape_and_unknown_routes(collector: tuple[CollectorServer, EventStore]) -> None:
    """A batch that is not {"events": [...]} is a 400; unknown routes and methods answer JSON errors."""
    server, store = collector
    r = httpx.post(server.url + "/events", json=[go_batch()[0]])
    assert r.status_code == 400 and "events" in r.json()["error"]
    assert httpx.get(server.url + "/nope").json() == {"error": "no route /nope"}
    assert httpx.get(server.url + "/event").status_code == 405
    assert store.count() == 0
