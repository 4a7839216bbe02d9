"""What was recorded is what is delivered: frozen data, untouched handler results, UTC timestamps,
cancellation is not failure, idempotency keys and pydantic models through the decorator."""

from __future__ import annotations

import asyncio
import calendar
import os
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pydantic
import pytest
from otel_fixtures import OtelSdk, global_sdk

from otel_commerce import (
    CommerceEvent,
    EventValidationError,
    Order,
    OrderItem,
    Settings,
    commerce_event,
    record_event,
    stats,
)
from otel_commerce._model._catalog import apply_marketing, new_event
from otel_commerce._model._identity import event_id_for
from otel_commerce._runtime import RUNTIME
from otel_commerce.testing import CapturedEvents, capture_events


@pytest.fixture
def sdk() -> Iterator[OtelSdk]:
    s = global_sdk()
    s.clear()
    yield s
    s.clear()


@pytest.fixture
def events(sdk: OtelSdk) -> Iterator[CapturedEvents]:
    RUNTIME.install(Settings(), None)
    with capture_events() as captured:
        yield captured
    RUNTIME.reset()


@pytest.fixture
def new_york() -> Iterator[None]:
    """The process runs in America/New_York (UTC-5 in winter) for the test."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


# --------------------------------------------------------------------------- frozen at record time
def test_edits_after_record_event_change_nothing(sdk: OtelSdk, events: CapturedEvents) -> None:
    """Editing data (top level, nested dict, nested list) after record_event returns changes neither the
    delivered event nor what another exporter saw."""
    data: dict[str, Any] = {"cart_id": "c1", "value": 2.0, "meta": {"coupon": "A"}, "tags": ["x"]}
    record_event("cart.updated", organization_id="acme", id="fz-1", data=data)
    data["value"] = 99.0
    data["meta"]["coupon"] = "HACKED"
    data["tags"].append("y")
    [ev] = events
    assert ev.data == {"cart_id": "c1", "value": 2.0, "currency": "USD", "meta": {"coupon": "A"}, "tags": ["x"]}
    [log] = [r.log_record for r in sdk.logs.get_finished_logs()]
    seen = dict((log.attributes or {})["commerce.data"])  # type: ignore[arg-type]
    assert dict(seen["meta"]) == {"coupon": "A"} and list(seen["tags"]) == ["x"]


def test_order_items_edited_after_record_change_nothing(sdk: OtelSdk, events: CapturedEvents) -> None:
    """The delivery thread maps items later: it must read the items as they were at record time."""
    item = OrderItem("p1", "Shirt", "S", 1, 5.0)
    order = Order(id="fz-2", org_id="acme", total=5.0, currency="USD", items=[item])
    record_event("order.completed", order=order)
    item.product_name, item.quantity = "Changed", 9
    order.items.append(OrderItem("p2", "Late", "L", 1, 1.0))
    [ev] = events
    assert ev.ga4 is not None and [(i.item_name, i.quantity) for i in ev.ga4.items] == [("Shirt", 1)]
    [log] = [r.log_record for r in sdk.logs.get_finished_logs()]
    pending = log.commerce_pending  # type: ignore[attr-defined]  # what the engine maps on its thread
    assert [(i.product_name, i.quantity) for i in pending.items] == [("Shirt", 1)]


def test_decorator_never_mutates_a_returned_commerce_event(events: CapturedEvents) -> None:
    """The handler's CommerceEvent keeps its raw e-mail, no event_id, no GA4/CAPI blocks; the copy gets them."""
    mine = CommerceEvent(
        id="fz-3",
        type="order.completed",
        timestamp=datetime(2026, 1, 2, 3, 4, 5),  # naive: UTC
        organization_id="acme",
        data={"order_id": "fz-3", "revenue": 1.0, "currency": "USD", "email": "A@B.c"},
    )

    @commerce_event("order.completed")
    def handler() -> CommerceEvent:
        return mine

    assert handler() is mine
    assert mine.data["email"] == "A@B.c" and mine.event_id == "" and mine.ga4 is None and mine.facebook_capi is None
    assert mine.timestamp.tzinfo is None
    [ev] = events
    assert ev is not mine and ev.data["email"] != "A@B.c" and ev.ga4 is not None
    assert ev.event_id == event_id_for("order.completed", "acme", "fz-3", once=True)


def test_decorator_never_mutates_a_returned_mapping(events: CapturedEvents) -> None:
    result = {"id": "fz-4", "organization_id": "acme", "cart_id": "c", "value": 1.0, "meta": {"email": "A@B.c"}}
    snapshot = {**result, "meta": dict(result["meta"])}  # type: ignore[dict-item]

    @commerce_event("cart.updated")
    def handler() -> dict[str, Any]:
        return result

    handler()
    result["meta"]["email"] = "changed@x.y"  # type: ignore[index]
    [ev] = events
    assert ev.data["meta"]["email"] not in ("A@B.c", "changed@x.y")  # hashed copy
    result["meta"]["email"] = "A@B.c"  # type: ignore[index]
    assert result == snapshot


# --------------------------------------------------------------------------- UTC everywhere
def test_naive_timestamp_is_utc_in_capi_event_time(new_york: None, events: CapturedEvents) -> None:
    """A naive timestamp means UTC on every path: envelope, record, CAPI event_time (not New York time)."""
    naive = datetime(2026, 1, 15, 12, 0, 0)
    expected = calendar.timegm(naive.timetuple())
    ev = apply_marketing(new_event("order.completed", id="fz-5", organization_id="acme", timestamp=naive))
    assert ev.facebook_capi is not None and ev.facebook_capi.event_time == expected

    @commerce_event("order.completed")
    def handler() -> CommerceEvent:
        return new_event("order.completed", id="fz-6", organization_id="acme", timestamp=naive)

    handler()
    record_event("order.created", id="fz-7", organization_id="acme", timestamp=naive, data={"revenue": 1.0})
    for captured in events:
        assert captured.timestamp == naive.replace(tzinfo=timezone.utc)
        assert captured.facebook_capi is not None and captured.facebook_capi.event_time == expected
        assert captured.to_dict()["timestamp"] == "2026-01-15T12:00:00Z"


def test_entity_ids_with_unix_ms_use_utc(new_york: None, events: CapturedEvents) -> None:
    """referral.credit_granted's id "credit-<user>-<unix ms>" takes a naive timestamp as UTC."""
    naive = datetime(2026, 1, 15, 12, 0, 0)
    record_event("referral.credit_granted", organization_id="acme", user_id="u1", timestamp=naive,
                 data={"role": "referrer", "amount": 1.0})  # fmt: skip
    [ev] = events
    assert ev.id == f"credit-u1-{calendar.timegm(naive.timetuple()) * 1000}"


_OUT_OF_OTLP_RANGE = [
    datetime(1, 1, 1, 1, tzinfo=timezone(timedelta(hours=5))),  # year 0 in UTC
    datetime(9999, 12, 31, 23, tzinfo=timezone(-timedelta(hours=5))),  # year 10000 in UTC
    datetime(1969, 12, 31),  # before the epoch: uint64 nanoseconds cannot say it
    datetime(1970, 1, 1, 0, 59, 59, tzinfo=timezone(timedelta(hours=1))),  # 1969 in UTC
    datetime(2554, 7, 21, 23, 34, 33, 709552),  # one microsecond past 2**64 - 1 ns
    datetime(2600, 1, 1),
    datetime(9999, 12, 31),
]


@pytest.mark.parametrize("ts", _OUT_OF_OTLP_RANGE, ids=lambda ts: ts.isoformat())
def test_timestamps_outside_what_otlp_can_encode_are_refused(events: CapturedEvents, ts: datetime) -> None:
    """OTLP's ``time_unix_nano`` is uint64 nanoseconds: 1970-01-01 .. 2554-07-21 in UTC (a stock OTLP
    exporter fails its whole batch on one such record), so record_event refuses the rest at the call."""
    with pytest.raises(EventValidationError, match=r"outside 1970-01-01T00:00:00Z \.\. 2554-07-21"):
        record_event("order.created", id="fz-8", organization_id="acme", timestamp=ts)
    assert len(events) == 0


def test_the_edges_of_the_otlp_range_are_accepted_and_encode(events: CapturedEvents) -> None:
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
    from otel_fixtures import global_sdk

    sdk = global_sdk()
    sdk.clear()
    for ts in (datetime(1970, 1, 1), datetime(2554, 7, 21, 23, 34, 33, 709551)):
        record_event("order.created", id=f"edge-{ts.year}", organization_id="acme", timestamp=ts)
    assert [e.timestamp.year for e in events] == [1970, 2554]
    logs = sdk.logs.get_finished_logs()
    encode_logs(logs).SerializeToString()  # the stock OTLP encoder takes them
    sdk.clear()


@pytest.mark.parametrize("ts", [datetime(1969, 12, 31), datetime(2600, 1, 1)], ids=["1969", "2600"])
def test_the_decorator_and_the_client_refuse_a_timestamp_otlp_cannot_encode(
    events: CapturedEvents, ts: datetime
) -> None:
    """The decorator's returned envelope (refused, counted, not delivered) and ``Client.emit_raw``
    (``Publisher.publish``: tests/test_publisher.py)."""
    from otel_commerce import Client

    ok = new_event("order.created", id="ts-dec", organization_id="acme")

    @commerce_event("order.created", organization_id="acme")
    def handler() -> object:
        ok.timestamp = ts
        return ok

    before = stats()["errors"]
    assert handler() is ok  # the handler's result is returned; the event is refused
    assert len(events) == 0 and stats()["errors"] == before + 1
    client = Client("http://127.0.0.1:9")
    try:
        for raw in (ts, ts.isoformat() + "Z"):
            with pytest.raises(EventValidationError, match="outside 1970"):
                client.emit_raw({"event": "x_custom", "timestamp": raw})
    finally:
        client.close(0.0)


# --------------------------------------------------------------------------- cancellation is not failure
@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(1), GeneratorExit()], ids=lambda e: type(e).__name__)
def test_on_error_not_fired_on_interrupts(events: CapturedEvents, error: BaseException) -> None:
    @commerce_event("order.completed", on_error="checkout.failed", organization_id="acme")
    def pay(session_id: str) -> None:
        raise error

    with pytest.raises(type(error)):
        pay("s-int")
    assert len(events) == 0


async def test_on_error_not_fired_on_cancellation(events: CapturedEvents) -> None:
    started = asyncio.Event()

    @commerce_event("order.completed", on_error="checkout.failed", organization_id="acme")
    async def pay(session_id: str) -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.ensure_future(pay("s-cancel"))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(events) == 0

    @commerce_event("order.completed", on_error="checkout.failed", organization_id="acme")
    async def pay_fails(session_id: str) -> None:
        raise ValueError("declined")

    with pytest.raises(ValueError):
        await pay_fails("s-fail")
    assert [(e.type, e.id) for e in events] == [("checkout.failed", "s-fail")]


# --------------------------------------------------------------------------- keys and pydantic
def test_decorator_idempotency_key_string_and_callable(events: CapturedEvents) -> None:
    @commerce_event("order.refunded", organization_id="acme", idempotency_key=lambda refund_id, order_id: refund_id)
    def refund(refund_id: str, order_id: str) -> dict[str, Any]:
        return {"id": order_id, "order_id": order_id, "refunded_amount": 1.0}

    @commerce_event("order.refunded", organization_id="acme", idempotency_key="fixed-key")
    def refund_fixed() -> dict[str, Any]:
        return {"id": "fz-o", "order_id": "fz-o", "refunded_amount": 1.0}

    refund("re_1", "fz-o")
    refund("re_1", "fz-o")
    refund("re_2", "fz-o")
    refund_fixed()
    ids = [e.event_id for e in events]
    assert ids[0] == ids[1] == event_id_for("order.refunded", "acme", "fz-o", once=False, idempotency_key="re_1")
    assert ids[2] != ids[0]
    assert ids[3] == event_id_for("order.refunded", "acme", "", once=False, idempotency_key="fixed-key")
    with pytest.raises(EventValidationError):
        commerce_event("order.refunded", idempotency_key="")


class CheckoutIn(pydantic.BaseModel):
    session_id: str
    amount: float


class OrderOut(pydantic.BaseModel):
    id: str
    organization_id: str
    order_id: str
    revenue: float
    currency: str
    placed_at: datetime


def test_pydantic_result_and_pydantic_body_on_error(events: CapturedEvents) -> None:
    """FastAPI's idiom: a returned model is its model_dump(); on_error finds session_id in a body model."""

    @commerce_event("order.completed", on_error="checkout.failed", organization_id="acme")
    def checkout(body: CheckoutIn, fail: bool = False) -> OrderOut:
        if fail:
            raise RuntimeError("declined")
        return OrderOut(id="fz-p", organization_id="acme", order_id="fz-p", revenue=body.amount, currency="USD",
                        placed_at=datetime(2026, 1, 1, tzinfo=timezone.utc))  # fmt: skip

    out = checkout(CheckoutIn(session_id="sess-9", amount=3.5))
    assert isinstance(out, OrderOut)
    with pytest.raises(RuntimeError):
        checkout(CheckoutIn(session_id="sess-9", amount=3.5), fail=True)
    done, failed = events
    assert (done.type, done.id, done.organization_id) == ("order.completed", "fz-p", "acme")
    assert done.data["revenue"] == 3.5 and done.data["placed_at"] == "2026-01-01T00:00:00Z"
    assert (failed.type, failed.id) == ("checkout.failed", "sess-9")


def test_dataclass_result_and_dataclass_body_on_error(events: CapturedEvents) -> None:
    """A returned dataclass instance is its fields (shallow; slots too, every call); a returned dataclass
    *class* is refused; on_error finds session_id in a dataclass argument."""
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Body:
        session_id: str
        amount: float

    @dataclasses.dataclass(slots=True)
    class Out:
        id: str
        order_id: str
        revenue: float
        currency: str = "USD"
        email: str = dataclasses.field(default="A@B.c", repr=False)

    seen: list[BaseException] = []
    RUNTIME.on_error.append(lambda exc, pending: seen.append(exc))

    @commerce_event("order.completed", on_error="checkout.failed", organization_id="acme")
    def checkout(body: Body, fail: bool = False) -> Any:
        if fail:
            raise RuntimeError("declined")
        return Out if body.amount < 0 else Out(id="fz-d" + body.session_id, order_id="fz-d", revenue=body.amount)

    out = checkout(Body("1", 3.5))
    assert out == Out(id="fz-d1", order_id="fz-d", revenue=3.5)
    checkout(Body("2", 4.5))
    assert checkout(Body("3", -1.0)) is Out
    with pytest.raises(RuntimeError):
        checkout(Body("sess-d", 1.0), fail=True)
    first, second, failed = events
    assert (first.id, first.organization_id, second.id) == ("fz-d1", "acme", "fz-d2")
    assert list(first.data) == ["order_id", "revenue", "currency", "email"] and first.data["email"] != "A@B.c"
    assert second.data["revenue"] == 4.5
    assert (failed.type, failed.id) == ("checkout.failed", "sess-d")
    assert [type(e).__name__ for e in seen] == ["EventValidationError"] and "cannot make an event" in str(seen[0])


def test_a_processor_editing_the_records_data_in_place_changes_nothing_delivered(
    sdk: OtelSdk, events: CapturedEvents
) -> None:
    """The record record_event builds beside other processors carries its own copy of the data (lists stay
    lists, the SDK would make them tuples): a processor editing it in place — nested map, nested list —
    changes what it and later exporters see, never the event delivered."""
    data: dict[str, Any] = {"cart_id": "c1", "value": 2.0, "meta": {"coupon": "A"}, "tags": ["x"]}
    record_event("cart.updated", organization_id="acme", id="fz-3", data=data)
    [log] = [r.log_record for r in sdk.logs.get_finished_logs()]
    seen = (log.attributes or {})["commerce.data"]
    [ev] = events
    assert seen == ev.data and seen is not ev.data and seen["tags"] is not ev.data["tags"]  # type: ignore[index]
    seen["meta"]["coupon"] = "REDACTED"  # type: ignore[index]
    seen["tags"].append("y")  # type: ignore[index]
    assert ev.data["meta"] == {"coupon": "A"} and ev.data["tags"] == ["x"]
