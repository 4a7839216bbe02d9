"""Publisher behaviour against a real nats-server: identity/dedup policy, trace context, bad input."""

from __future__ import annotations

import math
import uuid
from datetime import datetime

import orjson
import pytest
from nats.js.client import JetStreamContext
from opentelemetry.sdk.trace import TracerProvider
from streams import count, stored

from otel_commerce import CommerceEvent, EventValidationError, OrderItem, PayloadTooLargeError, Publisher, bootstrap
from otel_commerce._model import EVENT_ID_NAMESPACE, new_event


async def test_created_and_completed_of_one_order_both_land(js: JetStreamContext, uid: str) -> None:
    """order.created and order.completed share the order id but have distinct event ids: both are stored."""
    await bootstrap(js)
    p = Publisher(js)
    a = await p.publish_order_created(f"ord_7-{uid}", "acme", "u1", "a@b.c", 100)
    b = await p.publish_order_completed(f"ord_7-{uid}", "acme", "u1", "a@b.c", 100)
    assert a is not None and b is not None
    assert not a.duplicate and not b.duplicate
    assert await count(js, uid) == 2


async def test_completed_twice_is_stored_once(js: JetStreamContext, uid: str) -> None:
    """A handler that publishes order.completed twice for one order is deduplicated (PubAck.duplicate)."""
    await bootstrap(js)
    p = Publisher(js)
    first = await p.publish_order_completed(f"ord_8-{uid}", "acme", "u1", "a@b.c", 100)
    second = await p.publish_order_completed(f"ord_8-{uid}", "acme", "u1", "a@b.c", 100)
    assert first is not None and second is not None
    assert not first.duplicate and second.duplicate and second.seq == first.seq
    assert await count(js, uid) == 1


async def test_two_partial_refunds_both_land(js: JetStreamContext, uid: str) -> None:
    """Refunds repeat: two partial refunds of one order are two messages."""
    await bootstrap(js)
    p = Publisher(js)
    a = await p.publish_order_refunded(f"ord_9-{uid}", "acme", "u1", 100)
    b = await p.publish_order_refunded(f"ord_9-{uid}", "acme", "u1", 100)
    assert a is not None and b is not None and not b.duplicate
    assert await count(js, uid) == 2


async def test_idempotency_key_deduplicates_a_repeating_type(js: JetStreamContext, uid: str) -> None:
    """An explicit idempotency_key makes a retried refund a duplicate, and different keys both land."""
    await bootstrap(js)
    p = Publisher(js)
    a = await p.publish_order_refunded(f"ord_10-{uid}", "acme", "u1", 100, idempotency_key=f"refund-1-{uid}")
    b = await p.publish_order_refunded(f"ord_10-{uid}", "acme", "u1", 100, idempotency_key=f"refund-1-{uid}")
    c = await p.publish_order_refunded(f"ord_10-{uid}", "acme", "u1", 100, idempotency_key=f"refund-2-{uid}")
    assert a is not None and b is not None and c is not None
    assert b.duplicate and not c.duplicate
    assert await count(js, uid) == 2


async def test_active_span_sets_traceparent_and_ids(js: JetStreamContext, uid: str) -> None:
    """Inside a span, the message carries traceparent and the envelope the span's trace_id/span_id."""
    await bootstrap(js)
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("checkout") as span:
        await Publisher(js).publish_checkout_started(f"s1-{uid}", "acme", 100)
        ctx = span.get_span_context()
    (msg,) = await stored(js, uid)
    env = orjson.loads(msg.data)
    trace_id, span_id = format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
    assert env["trace_id"] == trace_id and env["span_id"] == span_id
    assert msg.headers is not None and msg.headers["traceparent"].startswith(f"00-{trace_id}-{span_id}-")


async def test_disabled_publisher_returns_none() -> None:
    """Publisher(None) is Go's nil publisher: every method returns None and sends nothing."""
    p = Publisher(None)
    assert not p.enabled
    assert await p.publish_order_completed("o", "acme", "u", "e", 1) is None
    ev = new_event("order.completed", id="o", organization_id="acme")
    assert await p.publish("commerce.order.completed", ev) is None


async def test_publish_custom_type_on_valid_subject(js: JetStreamContext, uid: str) -> None:
    """Unknown types are allowed through publish() as long as the subject is valid."""
    await bootstrap(js)
    ev = new_event("loyalty.points_earned", id=f"u1-{uid}", organization_id="acme", data={"points": 10})
    ack = await Publisher(js).publish("commerce.loyalty.points_earned", ev)
    assert ack is not None and not ack.duplicate
    (msg,) = await stored(js, uid)
    assert msg.seq == ack.seq and msg.subject == "commerce.loyalty.points_earned"
    assert orjson.loads(msg.data)["data"] == {"points": 10}


@pytest.mark.parametrize(
    "subject",
    ["orders.created", "commerce.", "commerce.order.*", "commerce.>", "commerce.order created", ""],
)
async def test_invalid_subject_is_refused(js: JetStreamContext, subject: str) -> None:
    """A subject outside commerce.* or with wildcards/spaces raises before anything is sent."""
    ev = new_event("order.completed", id="o", organization_id="acme")
    with pytest.raises(EventValidationError):
        await Publisher(js).publish(subject, ev)


@pytest.mark.parametrize(
    ("helper", "args", "match"),
    [
        ("publish_order_completed", ("", "acme", "u", "e", 100), "order_id must not be empty"),
        ("publish_order_completed", ("o", "", "u", "e", 100), "org_name must not be empty"),
        ("publish_order_completed", ("o", "acme", "u", "e", -1), "must not be negative"),
        ("publish_order_completed", ("o", "acme", "u", "e", 10.5), "must be an integer"),
        ("publish_order_completed", ("o", "acme", "u", "e", True), "must be an integer"),
        ("publish_order_completed", ("o", "acme", 7, "e", 100), "must be a string"),
        ("publish_order_completed", ("o", "acme", "u", "e", 100, "dollars"), "ISO 4217"),
        ("publish_order_completed", ("o", "acme", "u", "e", 100, "USD", [{"sku": 1}]), "list of OrderItem"),
        (
            "publish_order_completed",
            ("o", "acme", "u", "e", 100, "USD", [OrderItem("p", quantity=1, price=math.nan)]),
            "finite",
        ),
        ("publish_referral_tier_upgraded", ("acme", "u", "a", "b", -3), "must not be negative"),
        ("publish_checkout_started", (None, "acme", 100), "must not be empty"),
    ],
)
async def test_bad_input_raises_before_sending(
    js: JetStreamContext, uid: str, helper: str, args: tuple[object, ...], match: str
) -> None:
    """Bad input to a typed helper raises a clear EventValidationError and nothing reaches the stream."""
    await bootstrap(js)
    own = {"o": f"o-{uid}", "u": f"u-{uid}", "acme": f"acme-{uid}"}  # each case carries the test's uid
    args = tuple(own.get(a, a) if isinstance(a, str) else a for a in args)
    with pytest.raises(EventValidationError, match=match):
        await getattr(Publisher(js), helper)(*args)
    assert await count(js, uid) == 0


@pytest.mark.parametrize("year", [1969, 2600])
async def test_a_timestamp_otlp_cannot_encode_is_refused_before_sending(js: JetStreamContext, uid: str, year: int) -> None:
    """Outside 1970-01-01 .. 2554-07-21 (OTLP's uint64 nanoseconds) raises; nothing reaches the stream."""
    await bootstrap(js)
    ev = new_event("order.completed", id=f"o-{uid}", organization_id="acme")
    ev.timestamp = datetime(year, 6, 1)
    with pytest.raises(EventValidationError, match="outside 1970"):
        await Publisher(js).publish(ev.subject, ev)
    assert await count(js, uid) == 0


@pytest.mark.parametrize(
    "data",
    [{"amount": math.inf}, {"nested": {"x": math.nan}}, {"obj": object()}, {1: "int key"}, {"s": {1, 2}}],
)
async def test_bad_data_raises(data: dict[object, object]) -> None:
    """Non-finite amounts and non-JSON-serialisable data are refused when the envelope is built."""
    with pytest.raises(EventValidationError):
        new_event("order.completed", id="o", organization_id="acme", data=data)  # type: ignore[arg-type]


async def test_envelope_over_max_payload_is_refused(js: JetStreamContext, uid: str) -> None:
    """An envelope larger than the server's max payload raises PayloadTooLargeError, nothing is sent."""
    await bootstrap(js)
    ev = new_event(
        "order.completed", id=uid, organization_id="acme", data={"blob": "x" * (1024 * 1024 + 10)}, max_bytes=None
    )
    with pytest.raises(PayloadTooLargeError) as info:
        await Publisher(js).publish(ev.subject, ev)
    assert info.value.limit == 1024 * 1024 and info.value.size > info.value.limit
    assert await count(js, uid) == 0


async def test_publish_rejects_non_envelope(js: JetStreamContext) -> None:
    """publish() wants a CommerceEvent, not a dict."""
    with pytest.raises(EventValidationError, match="CommerceEvent"):
        await Publisher(js).publish("commerce.order.completed", {"id": "o"})  # type: ignore[arg-type]


def test_event_id_policy() -> None:
    """Once-per-entity types get a deterministic UUIDv5; repeating types a fresh UUIDv7."""
    a = new_event("order.completed", id="o1", organization_id="acme")
    b = new_event("order.completed", id="o1", organization_id="acme")
    c = new_event("order.created", id="o1", organization_id="acme")
    r1 = new_event("order.refunded", id="o1", organization_id="acme")
    r2 = new_event("order.refunded", id="o1", organization_id="acme")
    assert a.event_id == b.event_id != c.event_id
    assert a.event_id == str(uuid.uuid5(EVENT_ID_NAMESPACE, '["order.completed","acme","o1"]'))  # documented
    assert r1.event_id != r2.event_id and r1.event_id[14] == "7"
    k = new_event("order.refunded", id="o1", organization_id="acme", idempotency_key="k")
    assert k.event_id == new_event("order.refunded", id="o2", organization_id="acme", idempotency_key="k").event_id
    assert k.event_id != new_event("order.refunded", id="o1", organization_id="x", idempotency_key="k").event_id
    assert k.event_id != new_event("order.canceled", id="o1", organization_id="acme", idempotency_key="k").event_id
    assert isinstance(a, CommerceEvent)
