"""record_event and @commerce_event through the real OTel SDK (in-process, captured, no sinks)."""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from otel_fixtures import OtelSdk, global_sdk

from otel_commerce import (
    CommerceEvent,
    EventValidationError,
    Order,
    OrderItem,
    Settings,
    commerce_event,
    consume_span,
    record_event,
    sha256_hex,
)
from otel_commerce._model import Pending
from otel_commerce._runtime import RUNTIME
from otel_commerce.testing import CapturedEvents, capture_events


@pytest.fixture
def sdk() -> Iterator[OtelSdk]:
    s = global_sdk()
    s.clear()
    yield s
    s.clear()


@pytest.fixture
def mode(request: pytest.FixtureRequest) -> Iterator[str]:
    """Install settings for one test (mode from the parametrisation, default log; no engine)."""
    value = getattr(request, "param", "log")
    RUNTIME.install(Settings(mode=value), None)
    yield value
    RUNTIME.reset()


@pytest.fixture
def events(sdk: OtelSdk, mode: str) -> Iterator[CapturedEvents]:
    with capture_events() as captured:
        yield captured


def _ids(span: trace.Span) -> tuple[str, str]:
    sc = span.get_span_context()
    return format(sc.trace_id, "032x"), format(sc.span_id, "016x")


tracer = trace.get_tracer("tests")


def test_record_event_emits_log_record_with_trace_ids(sdk: OtelSdk, events: CapturedEvents) -> None:
    """A recorded event is an OTel log record commerce.<type> in the span's context, delivered once."""
    with tracer.start_as_current_span("POST /orders") as span:
        event_id = record_event(
            "order.completed",
            organization_id="acme",
            user_id="u1",
            data={"order_id": "o1", "revenue": 25.5, "currency": "USD"},
        )
    trace_id, span_id = _ids(span)
    [log] = [r.log_record for r in sdk.logs.get_finished_logs()]
    assert log.event_name == "commerce.order.completed"
    assert log.timestamp is not None and log.trace_id == int(trace_id, 16) and log.span_id == int(span_id, 16)
    assert log.body is None  # events should not use the body (event semantic conventions)
    assert log.severity_number is not None and log.severity_number.name == "INFO"
    attrs = dict(log.attributes or {})
    assert attrs["commerce.event_id"] == event_id and attrs["commerce.id"] == "o1"
    assert attrs["commerce.type"] == "order.completed" and attrs["commerce.user_id"] == "u1"
    assert attrs["commerce.revenue"] == 25.5 and attrs["commerce.currency"] == "USD"
    assert attrs["commerce.organization_id"] == "acme"
    assert attrs["commerce.data"] == {"order_id": "o1", "revenue": 25.5, "currency": "USD"}
    [ev] = events
    assert (ev.trace_id, ev.span_id, ev.event_id, ev.id) == (trace_id, span_id, event_id, "o1")
    assert ev.ga4 is not None and ev.ga4.event_name == "purchase" and ev.ga4.value == 25.5


def test_record_event_with_order_maps_like_the_helpers(events: CapturedEvents) -> None:
    """order= maps an Order (float units) to the order envelope, GA4 items and CAPI blocks included."""
    order = Order(
        id="o2", user_id="u2", email="Bob@Example.com", total=12.0, currency="EUR", org_id="acme",
        items=[OrderItem("p1", "Shirt", "S", 2, 6.0)],
    )  # fmt: skip
    record_event("order.completed", order=order)
    [ev] = events
    assert ev.organization_id == "acme" and ev.user_id == "u2" and ev.id == "o2"
    assert ev.data == {"order_id": "o2", "revenue": 12.0, "currency": "EUR", "email": sha256_hex("bob@example.com")}
    assert ev.ga4 is not None and [i.item_id for i in ev.ga4.items] == ["p1"]
    assert ev.facebook_capi is not None and ev.facebook_capi.user_data is not None
    assert ev.facebook_capi.user_data.email == sha256_hex("bob@example.com")


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("hash", sha256_hex("a@b.c")), ("drop", None), ("keep", "A@B.c")],
)
def test_pii_policy_in_what_other_exporters_see(sdk: OtelSdk, policy: str, expected: str | None) -> None:
    """By default no raw e-mail/phone/IP/UA reaches a log record; drop removes them, keep keeps them."""
    RUNTIME.install(Settings(pii=policy), None)  # type: ignore[arg-type]
    try:
        with capture_events():
            record_event(
                "order.created",
                organization_id="acme",
                data={
                    "order_id": "o3",
                    "email": "A@B.c",
                    "phone": "+1 555 0100",
                    "ip": "1.2.3.4",
                    "context": {"user_agent": "UA/1"},
                },
            )
    finally:
        RUNTIME.reset()
    [log] = [r.log_record for r in sdk.logs.get_finished_logs()]
    data = dict((log.attributes or {})["commerce.data"])  # type: ignore[arg-type]
    assert data.get("email") == expected
    text = repr(log.body) + repr(dict(log.attributes or {}))
    if policy != "keep":
        for raw in ("A@B.c", "555 0100", "1.2.3.4", "UA/1"):
            assert raw not in text
    else:
        assert "1.2.3.4" in text and "UA/1" in text


def test_custom_type_is_allowed_without_marketing_blocks(events: CapturedEvents) -> None:
    """A type outside the catalog is recorded on commerce.<type>, with no GA4/Meta blocks."""
    event_id = record_event("loyalty.points_earned", organization_id="acme", data={"points": 5})
    [ev] = events
    assert ev.type == "loyalty.points_earned" and ev.subject == "commerce.loyalty.points_earned"
    assert ev.ga4 is None and ev.facebook_capi is None and ev.event_id == event_id


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"organization_id": None, "data": {"order_id": "o"}}, "organization_id"),
        ({"organization_id": "acme", "data": {}}, "needs field 'order_id'"),
        ({"organization_id": "acme", "data": {"order_id": "o", "revenue": float("nan")}}, "finite"),
        ({"organization_id": "acme", "data": {"order_id": "o", "x": object()}}, "serialisable"),
        ({"organization_id": "acme", "data": "not a mapping"}, "mapping"),
        ({"organization_id": "acme", "id": "o", "user_id": 5}, "user_id"),
    ],
)
def test_record_event_bad_input_raises(events: CapturedEvents, kwargs: dict[str, Any], match: str) -> None:
    """Bad input to record_event raises a clear EventValidationError and records nothing."""
    with pytest.raises(EventValidationError, match=match):
        record_event("order.completed", **kwargs)
    assert len(events) == 0


def test_record_event_rejects_bad_type(events: CapturedEvents) -> None:
    """An event type that cannot be a subject is refused."""
    with pytest.raises(EventValidationError):
        record_event("order completed!", organization_id="acme", id="x")


# ------------------------------------------------------------------------------------ decorator
def test_decorator_sync_mapping_lifts_envelope_fields(events: CapturedEvents) -> None:
    """A returned mapping becomes data, with id/organization_id/user_id/session_id lifted; result untouched."""

    @commerce_event("checkout.started")
    def start(session: str) -> dict[str, Any]:
        return {"organization_id": "acme", "session_id": session, "user_id": "u9", "value": 10.0, "currency": "USD"}

    with tracer.start_as_current_span("POST /checkout") as span:
        result = start("s1")
    assert result["session_id"] == "s1"
    [ev] = events
    assert (ev.organization_id, ev.session_id, ev.user_id, ev.id) == ("acme", "s1", "u9", "s1")
    assert ev.data == {"session_id": "s1", "value": 10.0, "currency": "USD"}  # the catalog's data keeps it
    assert (ev.trace_id, ev.span_id) == _ids(span)


async def test_decorator_async_records_in_handler_span(events: CapturedEvents) -> None:
    """Async handlers are supported; the event carries the span that was current in the handler."""
    seen: dict[str, str] = {}

    @commerce_event("order.completed", organization_id="acme")
    async def complete(order_id: str) -> Order:
        seen["trace"], seen["span"] = _ids(trace.get_current_span())
        return Order(id=order_id, user_id="u1", total=5.0, currency="USD")

    with tracer.start_as_current_span("handler"):
        result = await complete("o5")
    assert isinstance(result, Order) and result.id == "o5"
    [ev] = events
    assert ev.id == "o5" and ev.organization_id == "acme"
    assert (ev.trace_id, ev.span_id) == (seen["trace"], seen["span"])


async def test_decorator_async_dict_result_with_keyword_arguments(events: CapturedEvents) -> None:
    """An async handler's returned dict: lifted keys leave data, PII policy on the copy, the result untouched."""

    @commerce_event("order.completed", organization_id="acme")
    async def complete(order_id: str, *, email: str) -> dict[str, Any]:
        return {"id": order_id, "user_id": "u1", "order_id": order_id, "revenue": 5.0, "currency": "USD", "email": email}

    with tracer.start_as_current_span("handler") as span:
        result = await complete("o6", email="a@b.c")
    assert result == {"id": "o6", "user_id": "u1", "order_id": "o6", "revenue": 5.0, "currency": "USD", "email": "a@b.c"}
    [ev] = events
    assert (ev.id, ev.organization_id, ev.user_id, ev.session_id) == ("o6", "acme", "u1", "")
    assert list(ev.data) == ["order_id", "revenue", "currency", "email"] and ev.data["email"] != "a@b.c"
    assert (ev.trace_id, ev.span_id) == _ids(span)


def test_decorator_keeps_signature_and_methods_work(events: CapturedEvents) -> None:
    """functools.wraps keeps name/signature; decorating a method works (self is passed through)."""

    class Shop:
        org = "acme"

        @commerce_event(
            "referral.claimed",
            extract=lambda r, self, code: {"organization_id": self.org, "referee_id": r, "referral_code": code},
        )
        def claim(self, code: str) -> str:
            """Claim a referral."""
            return "u77"

    assert Shop.claim.__name__ == "claim" and Shop.claim.__doc__ == "Claim a referral."
    assert list(inspect.signature(Shop.claim).parameters) == ["self", "code"]
    assert Shop().claim("R1") == "u77"
    [ev] = events
    assert ev.type == "referral.claimed" and ev.id == "u77" and ev.data["referral_code"] == "R1"


def test_extract_none_means_no_event(events: CapturedEvents) -> None:
    """extract= returning None records nothing."""

    @commerce_event("cart.updated", extract=lambda result, *a, **k: None)
    def update() -> int:
        return 3

    assert update() == 3
    assert len(events) == 0


def test_returned_commerce_event_used_as_is(events: CapturedEvents) -> None:
    """A returned CommerceEvent is delivered as is, with event_id and trace ids filled in."""
    from otel_commerce._model import new_event

    @commerce_event("product.created")
    def create() -> CommerceEvent:
        return new_event("product.created", id="p1", organization_id="acme", data={"slug": "s"})

    with tracer.start_as_current_span("create"):
        create()
    [ev] = events
    assert ev.id == "p1" and ev.event_id and ev.trace_id


def test_exception_propagates_unchanged_and_on_error_event(events: CapturedEvents) -> None:
    """The handler's exception propagates unchanged; on_error= records its event; no success event."""
    boom = RuntimeError("card declined")

    @commerce_event("order.completed", on_error="checkout.failed", organization_id="acme")
    def pay(session_id: str) -> dict[str, Any]:
        raise boom

    with pytest.raises(RuntimeError) as info:
        pay("s1")
    assert info.value is boom
    [ev] = events
    assert ev.type == "checkout.failed"
    assert ev.data == {"error_type": "RuntimeError", "error_message": "card declined"}

    @commerce_event("order.completed", organization_id="acme")
    def pay_plain() -> None:
        raise ValueError("x")

    with pytest.raises(ValueError):
        pay_plain()
    assert len(events) == 1


def test_decorator_bad_result_is_counted_not_raised(events: CapturedEvents) -> None:
    """Bad input through the decorator is counted and reported to on_error; the result is untouched."""
    seen: list[BaseException] = []

    def cb(exc: BaseException, pending: Pending | None) -> None:
        seen.append(exc)

    RUNTIME.on_error.append(cb)
    before = RUNTIME.counters["errors"]

    @commerce_event("order.completed")
    def bad() -> dict[str, Any]:
        return {"order_id": "o1", "revenue": float("inf")}  # no organization, infinite amount

    @commerce_event("order.completed", organization_id="acme")
    def weird() -> int:
        return 42

    assert bad() == {"order_id": "o1", "revenue": float("inf")}
    assert weird() == 42
    assert RUNTIME.counters["errors"] == before + 2
    assert all(isinstance(e, EventValidationError) for e in seen) and len(seen) == 2
    assert len(events) == 0


@pytest.mark.parametrize("kind", ["dict", "ordered", "proxy"])
def test_decorator_mapping_kinds_make_the_same_event(events: CapturedEvents, kind: str) -> None:
    """A returned dict (the inline path), a dict subclass and a read-only mapping (the general path) make the
    same event: lifted keys leave data (checkout.started keeps session_id), the handler's mapping unchanged."""
    from collections import OrderedDict
    from types import MappingProxyType

    wrap = {"dict": dict, "ordered": OrderedDict, "proxy": MappingProxyType}[kind]

    @commerce_event("checkout.started", organization_id="acme")
    def start(session: str) -> Any:
        return wrap({"id": "c-" + session, "user_id": "u9", "session_id": session, "value": 10.0, "currency": "USD"})

    @commerce_event("cart.updated")
    def update(cart: str) -> Any:
        return wrap({"organization_id": "org2", "session_id": "s2", "cart_id": cart, "value": 1.0})

    first = start("s1")
    assert dict(first) == {"id": "c-s1", "user_id": "u9", "session_id": "s1", "value": 10.0, "currency": "USD"}
    start(session="s1b")  # keyword arguments reach the handler too
    update("k1")
    got = [(e.type, e.id, e.organization_id, e.user_id, e.session_id, e.data) for e in events]
    assert got == [
        ("checkout.started", "c-s1", "acme", "u9", "s1", {"session_id": "s1", "value": 10.0, "currency": "USD"}),
        ("checkout.started", "c-s1b", "acme", "u9", "s1b", {"session_id": "s1b", "value": 10.0, "currency": "USD"}),
        ("cart.updated", "k1", "org2", "", "s2", {"cart_id": "k1", "value": 1.0, "currency": "USD"}),
    ]


def test_decorator_type_registered_after_decoration(events: CapturedEvents) -> None:
    """A catalog-namespace type registered only after decoration: refused (reported, never raised) until it is
    registered, recorded on every call after; a ``commerce.`` prefix is the same type."""
    import uuid

    from otel_commerce import register_event_type

    event_type = "order.dec_later_" + uuid.uuid4().hex[:8]
    seen: list[BaseException] = []
    RUNTIME.on_error.append(lambda exc, pending: seen.append(exc))

    @commerce_event(event_type, organization_id="acme")
    def ship(order_id: str) -> dict[str, Any]:
        return {"id": order_id, "carrier": "ups"}

    @commerce_event("commerce." + event_type, organization_id="acme")
    def ship_prefixed(order_id: str) -> dict[str, Any]:
        return {"id": order_id, "carrier": "dhl"}

    assert ship("o1") == {"id": "o1", "carrier": "ups"}
    assert ship_prefixed("o1") == {"id": "o1", "carrier": "dhl"}
    assert len(events) == 0 and len(seen) == 2
    assert all(isinstance(e, EventValidationError) and "unknown event type" in str(e) for e in seen)
    register_event_type(event_type)
    for order_id in ("o2", "o3"):
        ship(order_id)
        ship_prefixed(order_id)
    got = [(e.type, e.id, e.organization_id, e.data["carrier"]) for e in events]
    assert got == [(event_type, o, "acme", c) for o in ("o2", "o3") for c in ("ups", "dhl")]
    assert len(seen) == 2


async def test_decorator_type_is_the_one_record_event_makes_on_every_call(events: CapturedEvents) -> None:
    """The decorator strips one ``commerce.`` prefix, as record_event does, on the first call and every later
    one (its type checks are skipped once passed): ``commerce.commerce.x`` is type ``commerce.x`` each time."""
    import uuid

    name = "commerce.commerce.pts_" + uuid.uuid4().hex[:8]

    @commerce_event(name)
    def sync(i: int) -> dict[str, Any]:
        return {"id": f"s{i}", "organization_id": "acme"}

    @commerce_event(name)
    async def asyn(i: int) -> dict[str, Any]:
        return {"id": f"a{i}", "organization_id": "acme"}

    @commerce_event(name, extract=lambda result, i: result)  # the general path (not inlined)
    def extracted(i: int) -> dict[str, Any]:
        return {"id": f"e{i}", "organization_id": "acme"}

    for i in range(2):
        sync(i)
        await asyn(i)
        extracted(i)
    record_event(name, id="r", organization_id="acme")
    assert {e.type for e in events} == {name[len("commerce.") :]} and len(events) == 7


async def test_decorator_async_span_option_and_on_error(sdk: OtelSdk, events: CapturedEvents) -> None:
    """span=True on async handlers: the span is opened around the handler, the event (or the on_error event,
    the exception still propagating) is recorded in it."""

    @commerce_event("contributor.registered", organization_id="acme", span=True)
    async def register(user: str) -> dict[str, str]:
        return {"user_id": user, "github_username": "octo"}

    boom = RuntimeError("declined")

    @commerce_event("order.completed", organization_id="acme", span=True, on_error="checkout.failed")
    async def pay(session_id: str) -> dict[str, Any]:
        raise boom

    assert await register(user="u1") == {"user_id": "u1", "github_username": "octo"}
    with pytest.raises(RuntimeError) as info:
        await pay("s1")
    assert info.value is boom
    spans = {s.name: s for s in sdk.spans.get_finished_spans()}
    ok, failed = spans["commerce contributor.registered"], spans["commerce order.completed"]
    assert ok.context is not None and failed.context is not None
    assert [(e.type, e.trace_id, e.span_id) for e in events] == [
        ("contributor.registered", format(ok.context.trace_id, "032x"), format(ok.context.span_id, "016x")),
        ("checkout.failed", format(failed.context.trace_id, "032x"), format(failed.context.span_id, "016x")),
    ]


def test_span_option_opens_a_span_when_none(sdk: OtelSdk, events: CapturedEvents) -> None:
    """span=True opens a span around the handler when no span is recording, and the event is in it."""

    @commerce_event("contributor.registered", organization_id="acme", span=True)
    def register(user: str) -> dict[str, str]:
        return {"user_id": user, "github_username": "octo"}

    register("u1")
    [span] = [s for s in sdk.spans.get_finished_spans() if s.name == "commerce contributor.registered"]
    [ev] = events
    assert span.context is not None and ev.trace_id == format(span.context.trace_id, "032x")


@pytest.mark.parametrize("pii", ["hash", "drop", "keep"])
def test_span_option_records_the_handler_exception_scrubbed(sdk: OtelSdk, events: CapturedEvents, pii: str) -> None:
    """The span ``span=True`` opens reaches every span exporter: a handler's exception is recorded on it
    (``exception`` event + ERROR status) with e-mail / IP / phone scrubbed, unless ``OTEL_COMMERCE_PII=keep``."""
    RUNTIME.install(Settings(pii=pii), None)
    raw = ("alice@example.com", "203.0.113.7", "+1 415 555 0100")

    @commerce_event("checkout.started", span=True, on_error="checkout.failed", organization_id="acme")
    def checkout(session_id: str, email: str) -> None:
        raise ValueError(f"card declined for {email} from 203.0.113.7 tel +1 415 555 0100")

    with pytest.raises(ValueError, match=r"alice@example\.com"):  # the application still sees its own error
        checkout("s-span-exc", "alice@example.com")
    [span] = [s for s in sdk.spans.get_finished_spans() if s.name == "commerce checkout.started"]
    [exc_event] = [e for e in span.events if e.name == "exception"]
    attrs = dict(exc_event.attributes or {})
    exported = " ".join(str(v) for v in [span.status.description, *attrs.values()])
    assert span.status.status_code is trace.StatusCode.ERROR and attrs["exception.type"] == "ValueError"
    if pii == "keep":
        assert all(r in exported for r in raw)
    else:
        assert not any(r in exported for r in raw), exported
        assert attrs["exception.message"] == "card declined for [email] from [ip] tel [phone]"
        assert span.status.description == "ValueError: card declined for [email] from [ip] tel [phone]"
        assert "Traceback" in str(attrs["exception.stacktrace"])


@pytest.mark.parametrize("pii", ["hash", "keep"])
def test_consumer_span_records_the_consumer_exception_scrubbed(sdk: OtelSdk, pii: str) -> None:
    """``consume_span`` opens a span that reaches every span exporter: an exception raised while processing a
    message is recorded on it (``exception`` event + ERROR status) scrubbed of e-mail / IP / phone, unless
    ``OTEL_COMMERCE_PII=keep``, and re-raised."""
    RUNTIME.install(Settings(pii=pii), None)
    headers = {"Nats-Msg-Id": "e-consumer-1"}
    tracer = sdk.tracer_provider.get_tracer("consumer")
    with pytest.raises(RuntimeError, match=r"bob@example\.com"), consume_span(headers, tracer=tracer):
        raise RuntimeError("refund failed for bob@example.com from 198.51.100.9 tel +44 20 7946 0958")
    [span] = [s for s in sdk.spans.get_finished_spans() if s.name.startswith("process")]
    [exc_event] = [e for e in span.events if e.name == "exception"]
    exported = " ".join(str(v) for v in [span.status.description, *dict(exc_event.attributes or {}).values()])
    assert span.status.status_code is trace.StatusCode.ERROR
    raw = ("bob@example.com", "198.51.100.9", "+44 20 7946 0958")
    if pii == "keep":
        assert all(r in exported for r in raw)
    else:
        assert not any(r in exported for r in raw), exported
        assert "[email]" in exported and "[ip]" in exported and "[phone]" in exported


# ------------------------------------------------------------------------------------ modes
@pytest.mark.parametrize("mode", ["span"], indirect=True)
def test_span_mode_adds_span_event_and_delivers_once(sdk: OtelSdk, events: CapturedEvents) -> None:
    """Span mode: a span event with flat attributes + JSON payload, no log record, delivered once, at once."""
    with tracer.start_as_current_span("handler") as span:
        event_id = record_event(
            "order.refunded", organization_id="acme", data={"order_id": "o1", "refunded_amount": 3.0}
        )
        assert len(events) == 1  # delivered when recorded: an unended span cannot lose it
    [finished] = [s for s in sdk.spans.get_finished_spans() if s.name == "handler"]
    [sev] = finished.events
    assert sev.name == "commerce.order.refunded" and sev.attributes is not None
    assert sev.attributes["commerce.event_id"] == event_id
    assert '"refunded_amount":3.0' in str(sev.attributes["commerce.payload"])
    assert sdk.logs.get_finished_logs() == ()
    assert len(events) == 1  # the span exporter (installed globally) did not deliver it again
    [ev] = events
    assert ev.event_id == event_id and (ev.trace_id, ev.span_id) == _ids(span)


def test_span_exporter_delivers_foreign_span_events(sdk: OtelSdk, events: CapturedEvents) -> None:
    """CommerceSpanExporter delivers commerce.* span events added by other code (payload JSON), once."""
    with tracer.start_as_current_span("legacy") as span:
        span.add_event(
            "commerce.cart.updated",
            attributes={
                "commerce.payload": '{"id":"c1","type":"cart.updated","organization_id":"acme","data":{"value":2.0}}'
            },
        )
        span.add_event("app.other", attributes={"x": 1})
        assert len(events) == 0
    [ev] = events
    assert ev.type == "cart.updated" and ev.id == "c1" and ev.event_id
    assert abs(ev.timestamp.timestamp() - time.time()) < 60  # the span event's time, not the epoch
    assert (ev.trace_id, ev.span_id) == _ids(span)


@pytest.mark.parametrize("mode", ["span"], indirect=True)
def test_span_mode_unsampled_delivers_directly_without_a_log_record(sdk: OtelSdk, events: CapturedEvents) -> None:
    """Sampling never loses a business event, and span mode never writes to log backends."""
    sc = SpanContext(trace_id=0xABC, span_id=0xDEF, is_remote=False, trace_flags=TraceFlags(0))
    with trace.use_span(NonRecordingSpan(sc)):
        record_event("checkout.started", organization_id="acme", data={"session_id": "s1", "value": 1.0})
    record_event("checkout.started", organization_id="acme", data={"session_id": "s2", "value": 1.0})  # no span
    assert sdk.logs.get_finished_logs() == ()
    assert [ev.id for ev in events] == ["s1", "s2"]
    assert events[0].trace_id == format(0xABC, "032x")


@pytest.mark.parametrize("mode", ["both"], indirect=True)
def test_both_mode_records_both_and_delivers_once(sdk: OtelSdk, events: CapturedEvents) -> None:
    """Mode both: a log record and a span event, but the event is delivered exactly once."""
    with tracer.start_as_current_span("handler"):
        record_event("payment.received", organization_id="acme", data={"payment_id": "pay1", "amount": 2.0})
    assert len(sdk.logs.get_finished_logs()) == 1
    [finished] = [s for s in sdk.spans.get_finished_spans() if s.name == "handler"]
    assert [e.name for e in finished.events] == ["commerce.payment.received"]
    assert len(events) == 1
