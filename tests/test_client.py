"""The seed-compatible ``Client``: exact Go payloads (facts §4), ids, options, against a real HTTP server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fake_collector import FakeCollector
from opentelemetry.sdk.trace import TracerProvider

from otel_commerce._compat import Client
from otel_commerce._errors import EventValidationError
from otel_commerce._model import EVENT_ID_NAMESPACE, Order, OrderItem


@pytest.fixture
def collector() -> Iterator[FakeCollector]:
    with FakeCollector() as fc:
        yield fc


@pytest.fixture
def client(collector: FakeCollector) -> Iterator[Client]:
    c = Client(collector.url, linger_seconds=0.0, backoff_initial_seconds=0.01, backoff_max_seconds=0.05)
    try:
        yield c
    finally:
        c.close(5)


def _order() -> Order:
    return Order(
        id="ord_1",
        user_id="usr_1",
        email="Ann@Example.com",
        total=59.5,
        currency="usd",
        items=[OrderItem("p1", "Tee <b>", "SKU1", 2, 10.0), OrderItem("p2", "Mug", "SKU2", 1, 39.5)],
        status="paid",
        org_id="org_1",
    )


#: (emitter, args, the exact payload Go's client.go sends, without our added properties)
GOLDEN: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    (
        "emit_order_completed",
        (_order(),),
        {
            "event": "order_completed",
            "distinct_id": "usr_1",
            "organization_id": "org_1",
            "order_id": "ord_1",
            "revenue": 59.5,
            "quantity": 3,
            "properties": {
                "currency": "USD",  # upper-cased (issue 12: one currency rule on every API; Go sends it as given)
                "items": '[{"price":10,"product_id":"p1","product_name":"Tee \\u003cb\\u003e","quantity":2,"sku":"SKU1"},'
                '{"price":39.5,"product_id":"p2","product_name":"Mug","quantity":1,"sku":"SKU2"}]',
                "item_count": 2,
                "status": "paid",
                "email": "Ann@Example.com",
            },
        },
    ),
    (
        "emit_referral_link_created",
        ("org_1", "usr_1", "CODE1", "https://shop.example/r/CODE1"),
        {
            "event": "referral_link_created",
            "distinct_id": "usr_1",
            "organization_id": "org_1",
            "properties": {"referral_code": "CODE1", "referral_url": "https://shop.example/r/CODE1"},
        },
    ),
    (
        "emit_referral_claimed",
        ("org_1", "usr_ref", "usr_new", "CODE1"),
        {
            "event": "referral_claimed",
            "distinct_id": "usr_new",
            "organization_id": "org_1",
            "properties": {"referrer_id": "usr_ref", "referee_id": "usr_new", "referral_code": "CODE1"},
        },
    ),
    (
        "emit_referral_credit_granted",
        ("org_1", "usr_1", "referrer", 5.0, "USD"),
        {
            "event": "referral_credit_granted",
            "distinct_id": "usr_1",
            "organization_id": "org_1",
            "revenue": 5.0,
            "properties": {"role": "referrer", "amount": 5.0, "currency": "USD"},
        },
    ),
    (
        "emit_referral_commission_earned",
        ("org_1", "usr_ref", "ord_9", 2.5, "EUR"),
        {
            "event": "referral_commission_earned",
            "distinct_id": "usr_ref",
            "organization_id": "org_1",
            "order_id": "ord_9",
            "revenue": 2.5,
            "properties": {"order_id": "ord_9", "commission": 2.5, "currency": "EUR"},
        },
    ),
    (
        "emit_referral_tier_upgraded",
        ("org_1", "usr_1", "silver", "gold", 12),
        {
            "event": "referral_tier_upgraded",
            "distinct_id": "usr_1",
            "organization_id": "org_1",
            "properties": {"previous_tier": "silver", "new_tier": "gold", "referral_count": 12},
        },
    ),
    (
        "emit_contributor_registered",
        ("org_1", "usr_1", "octocat"),
        {
            "event": "contributor_registered",
            "distinct_id": "usr_1",
            "organization_id": "org_1",
            "properties": {"github_username": "octocat"},
        },
    ),
    (
        "emit_contributor_payout_calculated",
        ("org_1", "usr_1", "2025-01", 100.0, "USD"),
        {
            "event": "contributor_payout_calculated",
            "distinct_id": "usr_1",
            "organization_id": "org_1",
            "revenue": 100.0,
            "properties": {"period_month": "2025-01", "amount": 100.0, "currency": "USD"},
        },
    ),
    (
        "emit_contributor_payout_sent",
        ("org_1", "usr_1", "po_7", "2025-01", 100.0, "USD"),
        {
            "event": "contributor_payout_sent",
            "distinct_id": "usr_1",
            "organization_id": "org_1",
            "revenue": 100.0,
            "properties": {"payout_id": "po_7", "period_month": "2025-01", "amount": 100.0, "currency": "USD"},
        },
    ),
]


@pytest.mark.parametrize(("method", "args", "expected"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_typed_emitters_send_the_exact_go_payload(
    collector: FakeCollector, client: Client, method: str, args: tuple[Any, ...], expected: dict[str, Any]
) -> None:
    """Each of the nine emitters posts Go's payload, plus only properties.event_id (no span active)."""
    event_id = getattr(client, method)(*args)
    assert client.flush(5)
    assert len(collector.events) == 1
    got = collector.events[0]
    assert got["properties"].pop("event_id") == event_id
    uuid.UUID(event_id)
    assert got == expected
    assert type(got.get("quantity", 0)) is int
    assert type(got["properties"].get("referral_count", 0)) is int
    assert type(got["properties"].get("item_count", 0)) is int


def test_once_per_entity_types_get_a_deterministic_event_id(client: Client) -> None:
    """A handler that emits a completed order twice produces the same event_id (server-side dedup)."""
    first = client.emit_order_completed(_order())
    second = client.emit_order_completed(_order())
    assert first == second == str(uuid.uuid5(EVENT_ID_NAMESPACE, '["order.completed","org_1","ord_1"]'))
    one = client.emit_referral_credit_granted("org_1", "usr_1", "referrer", 1.0, "USD")
    two = client.emit_referral_credit_granted("org_1", "usr_1", "referrer", 1.0, "USD")
    assert one != two  # credits repeat: fresh UUIDv7 each time
    keyed = client.emit_referral_credit_granted("org_1", "usr_1", "referrer", 1.0, "USD", idempotency_key="k1")
    assert keyed == str(uuid.uuid5(EVENT_ID_NAMESPACE, '["referral.credit_granted","org_1","key","k1"]'))


def test_emitters_add_trace_ids_of_the_active_span(collector: FakeCollector, client: Client) -> None:
    """Inside a span, properties carry its trace_id and span_id."""
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("checkout") as span:
        client.emit_contributor_registered("org_1", "usr_1", "octocat")
        ctx = span.get_span_context()
    assert client.flush(5)
    props = collector.events[0]["properties"]
    assert props["trace_id"] == format(ctx.trace_id, "032x")
    assert props["span_id"] == format(ctx.span_id, "016x")


def test_emit_raw_sends_the_map_as_given_plus_an_event_id(collector: FakeCollector, client: Client) -> None:
    """emit_raw keeps the caller's keys, does not mutate the caller's dict, and adds properties.event_id."""
    raw = {"event": "custom_thing", "distinct_id": "u1", "revenue": 1.5, "properties": {"k": "v"}}
    event_id = client.emit_raw(raw)
    assert raw["properties"] == {"k": "v"}
    assert client.flush(5)
    got = collector.events[0]
    assert got["properties"] == {"k": "v", "event_id": event_id}
    assert {k: v for k, v in got.items() if k != "properties"} == {
        "event": "custom_thing",
        "distinct_id": "u1",
        "revenue": 1.5,
    }


def test_invalid_input_raises_at_call_time(client: Client) -> None:
    """Bad arguments raise EventValidationError before anything is queued."""
    with pytest.raises(EventValidationError):
        client.emit_referral_tier_upgraded("org_1", "usr_1", "a", "b", 2.5)  # type: ignore[arg-type]
    with pytest.raises(EventValidationError):
        client.emit_contributor_payout_sent("org_1", "usr_1", "po", "2025-01", float("nan"), "USD")
    with pytest.raises(EventValidationError):
        client.emit_order_completed({"id": "x"})  # type: ignore[arg-type]
    with pytest.raises(EventValidationError):
        client.emit_raw({"properties": {}})
    assert client.stats()["submitted"] == 0


def test_empty_endpoint_is_a_silent_no_op() -> None:
    """Client("") sends nothing, returns None and never fails, like Go's client."""
    with Client("") as c:
        assert not c.enabled
        assert c.emit_referral_claimed("o", "r", "e", "c") is None
        assert c.emit_raw({"event": "x"}) is None
        assert c.flush(0.1)
    assert c.stats() == {}


def test_headers_and_gzip_reach_the_collector(collector: FakeCollector) -> None:
    """Custom headers (Authorization) are sent and a gzip body is accepted by the collector."""
    with Client(collector.url, headers={"Authorization": "Bearer t0k"}, gzip=True, linger_seconds=0) as c:
        c.emit_contributor_registered("org_1", "usr_1", "octocat")
        assert c.flush(5)
    seen = collector.headers_seen[-1]
    assert seen.get("Authorization") == "Bearer t0k"
    assert seen.get("Content-Encoding") == "gzip"
    assert collector.events[0]["properties"]["github_username"] == "octocat"


def test_events_are_batched(collector: FakeCollector) -> None:
    """Many emits travel in a few POST /events requests, not one request per event."""
    with Client(collector.url, linger_seconds=0.2, batch_size=100) as c:
        for i in range(300):
            c.emit_referral_claimed("org_1", "usr_ref", f"usr_{i}", "CODE")
        assert c.flush(10)
    assert len(collector.events) == 300
    assert len(set(collector.event_ids())) == 300
    assert 3 <= len(collector.statuses("/events")) <= 10
    assert collector.statuses("/event") == []


def test_items_string_is_valid_json_with_integer_quantities(collector: FakeCollector, client: Client) -> None:
    """The order's items property is a JSON string that decodes to Go's item maps."""
    client.emit_order_completed(_order())
    assert client.flush(5)
    items = orjson.loads(collector.events[0]["properties"]["items"])
    assert items[0] == {"price": 10, "product_id": "p1", "product_name": "Tee <b>", "quantity": 2, "sku": "SKU1"}
    assert all(type(i["quantity"]) is int for i in items)


def test_emit_raw_refuses_unknown_names_in_a_catalog_namespace(collector: FakeCollector, client: Client) -> None:
    """emit_raw applies record_event's catalog-namespace rule to collector names, with a "did you mean" hint;
    registered custom types and other namespaces pass."""
    import otel_commerce

    for name in ("order_complete", "order.complete", "referral_claim"):
        with pytest.raises(EventValidationError, match=r"did you mean '(order\.completed|referral\.claimed)'"):
            client.emit_raw({"event": name, "properties": {}})
    assert client.stats()["submitted"] == 0
    custom = f"order.gift_wrapped_{uuid.uuid4().hex[:8]}"
    with pytest.raises(EventValidationError, match="register"):
        client.emit_raw({"event": custom.replace(".", "_")})
    otel_commerce.register_event_type(custom)
    sent = [client.emit_raw({"event": n}) for n in (custom.replace(".", "_"), "order_completed", "loyalty_anything")]
    assert client.flush(5)
    assert [(e["event"], e["properties"]["event_id"]) for e in collector.events] == list(
        zip((custom.replace(".", "_"), "order_completed", "loyalty_anything"), sent, strict=True)
    )
