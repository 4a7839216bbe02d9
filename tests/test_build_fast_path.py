"""``build_pending``'s fast path (issue 19): per-type plans, the one-call once-per-entity event id, the
span context read as a tuple, the one-walk freeze with PII listed at the top level. Everything it builds
(or refuses, with which message) equals what the general steps build: the reference below is the record
path before these shortcuts, made of the separate checks (``freeze_data`` then ``apply_pii_frozen``...).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import context, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from otel_fixtures import global_sdk

from otel_commerce import EventValidationError, Order, OrderItem, Settings, register_event_type
from otel_commerce._model import CATALOG, CommerceEvent, entity_id, subject_for, uuid7
from otel_commerce._model._catalog import (
    ENVELOPE_OVERHEAD,
    check_catalog_type,
    check_data,
    check_fields,
    check_ids,
    check_reserved,
    field_kinds,
    fields_from_order,
    items_size,
)
from otel_commerce._model._envelope import freeze_data
from otel_commerce._model._frozen import copy_items
from otel_commerce._model._identity import event_id_for, once_event_id
from otel_commerce._model._time import utc
from otel_commerce._record import _recorder, build_pending
from otel_commerce._record._pii import apply_pii, apply_pii_frozen, pii_kind
from otel_commerce._runtime import RUNTIME

_WHOLE = ("em", "ph", "ip", "ua")  # kinds whose whole value is digested (or dropped)
TS = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=timezone.utc)


def reference(
    event_type: Any,
    *,
    policy: str,
    max_bytes: int,
    organization_id: Any = None,
    user_id: Any = None,
    session_id: Any = None,
    data: Any = None,
    id: Any = None,
    idempotency_key: Any = None,
    order: Order | None = None,
    timestamp: datetime = TS,
) -> tuple[CommerceEvent, int, str, list[OrderItem]]:
    """The record path from the general steps: (event, trace_flags, trace_state, items). The PII policy
    applies inside containers before the catalog checks and the entity id, to top-level values after them."""
    if not isinstance(event_type, str):
        raise EventValidationError(f"event type must be a string, got {type(event_type).__name__}")
    if event_type.startswith("commerce."):
        event_type = event_type[len("commerce.") :]
    subject_for(event_type)
    check_catalog_type(event_type)
    spec = CATALOG.get(event_type)
    ts = utc(timestamp)
    payload: Any = {}
    items: list[OrderItem] = []
    if order is not None:
        fields = fields_from_order(order)
        fields["currency"] = fields["currency"] or "USD"
        items = copy_items(fields["items"])
        order_data = spec.data if spec else ("order_id", "revenue", "currency", "email")
        payload = {k: fields[k] for k in order_data if k in fields}
        organization_id = organization_id or fields["organization_id"] or None
        user_id = fields["user_id"] if user_id is None else user_id
        id = order.id if id is None else id
    if data is not None and not isinstance(data, Mapping):
        raise EventValidationError(f"data must be a mapping, got {type(data).__name__}")
    if data is not None:
        payload = {**payload, **data} if order is not None else data
    extra = items_size(items) if items else 0
    if policy == "keep":
        payload = check_data(event_type, payload, id=id, max_bytes=max_bytes, extra_bytes=extra, freeze=True)
    else:
        check_reserved(payload, event_type)
        payload = freeze_data(payload, max_bytes=max_bytes, extra_bytes=extra + ENVELOPE_OVERHEAD)
        for k, v in payload.items():  # the policy inside containers first (the entity id sees it applied)
            if type(v) in (dict, list) and pii_kind(k) not in _WHOLE:
                apply_pii_frozen({k: v}, policy)  # in place, inside v
        if spec is not None:
            check_fields(spec, payload, required=id is None, in_place=True)
    if spec is not None and spec.money in payload and "currency" in spec.data and not payload.get("currency"):
        payload["currency"] = "USD"
    if id is None:
        if spec is not None:
            scope = {
                "user_id": user_id or "",
                "organization_id": organization_id or "",
                "session_id": session_id or "",
                **{k: v for k, v in payload.items() if v not in (None, "")},
            }
            id = entity_id(spec, scope, ts)
        else:
            id = uuid7()
    if policy != "keep":  # then the top-level values (after the checks and the entity id)
        for k in list(payload):
            kind, v = pii_kind(k), payload[k]
            if kind in _WHOLE or (kind in ("id", "text") and type(v) is str):
                treated = apply_pii({k: v}, policy)
                if k in treated:
                    payload[k] = treated[k]
                else:
                    del payload[k]
    organization_id = organization_id if organization_id is not None else ""
    user_id = user_id or ""
    session_id = session_id or ""
    check_ids(event_type, id, organization_id, user_id, session_id, idempotency_key)
    event = CommerceEvent(
        id,
        event_type,
        ts,
        organization_id,
        user_id,
        session_id,
        payload,
        event_id=event_id_for(
            event_type,
            organization_id,
            id,
            once=spec.once if spec is not None else False,
            idempotency_key=idempotency_key,
        ),
    )
    sc = trace.get_current_span().get_span_context()
    if sc.is_valid:
        event.trace_id = format(sc.trace_id, "032x")
        event.span_id = format(sc.span_id, "016x")
        return event, int(sc.trace_flags), sc.trace_state.to_header(), items
    return event, 1, "", items


def _random(event: CommerceEvent) -> tuple[bool, bool]:
    """(the id is a fresh UUIDv7, the event_id is): those differ between two builds; compared by shape."""
    return event.id == "" or _is_uuid7(event.id), _is_uuid7(event.event_id)


def _is_uuid7(value: str) -> bool:
    try:
        return uuid.UUID(value).version == 7
    except ValueError:
        return False


def _shape(built: tuple[CommerceEvent, int, str, list[OrderItem]], random_id: bool, random_event_id: bool) -> Any:
    event, flags, state, items = built
    fields = (
        "uuid7" if random_id else event.id,
        event.type,
        event.timestamp,
        event.organization_id,
        event.user_id,
        event.session_id,
        event.data,
        event.ga4,
        event.facebook_capi,
        "uuid7" if random_event_id else event.event_id,
        event.trace_id,
        event.span_id,
    )
    types = (type(event.type), type(event.id), type(flags), tuple(type(k) for k in event.data))
    return fields, flags, state, types, items


def _outcome(fn: Any) -> Any:
    try:
        return ("ok", fn())
    except EventValidationError as exc:
        return ("error", str(exc))


def _compare(policy: str, max_bytes: int, kwargs: dict[str, Any]) -> None:
    RUNTIME.install(Settings(pii=policy, max_event_bytes=max_bytes), None)  # type: ignore[arg-type]
    try:
        expected = _outcome(lambda: reference(policy=policy, max_bytes=max_bytes, **kwargs))
        for _ in range(2):  # cold (the type's plan is made) and warm (from the plan)

            def built() -> tuple[CommerceEvent, int, str, list[OrderItem]]:
                p = build_pending(timestamp=TS, **kwargs)
                assert p.event is not None
                return p.event, p.trace_flags, p.trace_state, list(p.items)

            got = _outcome(built)
            assert got[0] == expected[0], (got, expected)
            if got[0] == "error":
                assert got[1] == expected[1]
                continue
            rid, reid = _random(expected[1][0])
            assert (rid, reid) == _random(got[1][0])
            assert _shape(got[1], rid, reid) == _shape(expected[1], rid, reid)
    finally:
        RUNTIME.reset()


TYPES = st.sampled_from(
    [
        "order.completed",
        "order.completed",
        "referral.credit_granted",
        "loyalty.points_earned",
        "commerce.order.completed",
        "order.canceled",
        "order.refunded",
        "checkout.started",
        "payment.received",
        "product.viewed",
        "referral.credit_granted",
        "referral.commission_earned",
        "contributor.payout_calculated",
        "loyalty.points_earned",
        "commerce.loyalty.points_earned",
        "order.complete",
        "commerce.",
    ]
)
KEYS = st.sampled_from(
    ["order_id", "revenue", "currency", "email", "reason", "session_id", "value", "payment_id", "amount",
     "product_id", "price", "referrer_id", "user_id", "period_month", "refunded_amount", "commission",
     "items", "note", "ip", "phone", "message", "id", "customerEmail", "x_id"]
)  # fmt: skip
TEXT = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["a@b.co", "Buyer@Example.com", "10.0.0.1", "+1 415 555 0100", "usd", "USD", "XYZ", " ", "o-1"]),
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**65), 2**65), st.floats(allow_nan=True, allow_infinity=True), TEXT
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)),
    max_leaves=8,
)
IDS = st.one_of(st.none(), st.just("ord_1"), st.just("a@b.co"), TEXT, st.integers(0, 3))
ORGS = st.one_of(st.just("acme"), st.just("org_acme"), st.just("a.b@c.co"), IDS)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    event_type=TYPES,
    data=st.one_of(
        st.none(),
        st.dictionaries(KEYS, SCALARS, max_size=6),
        st.dictionaries(KEYS, VALUES, max_size=6),
        st.fixed_dictionaries(
            {"order_id": st.one_of(st.just("ord_1"), TEXT), "revenue": st.one_of(st.just(12.5), SCALARS)},
            optional={"currency": st.sampled_from(["USD", "usd", " eur ", "", "XYZ"]), "email": TEXT, "items": VALUES},
        ),
        st.just([("a", 1)]),
    ),
    id=IDS,
    organization_id=ORGS,
    user_id=st.one_of(st.none(), st.just("usr_1"), TEXT),
    session_id=st.one_of(st.none(), st.just("s_1"), TEXT),
    idempotency_key=st.one_of(st.none(), st.none(), st.just("k-1"), st.just(""), TEXT),
    policy=st.sampled_from(["hash", "drop", "keep"]),
    max_bytes=st.sampled_from([2600, 1_048_576]),
    in_span=st.booleans(),
)
def test_build_pending_equals_the_general_steps(
    event_type: str,
    data: Any,
    id: Any,
    organization_id: Any,
    user_id: Any,
    session_id: Any,
    idempotency_key: Any,
    policy: str,
    max_bytes: int,
    in_span: bool,
) -> None:
    kwargs = dict(
        event_type=event_type,
        data=data,
        id=id,
        organization_id=organization_id,
        user_id=user_id,
        session_id=session_id,
        idempotency_key=idempotency_key,
    )
    if not in_span:
        _compare(policy, max_bytes, kwargs)
        return
    tracer = global_sdk().tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("request"):
        _compare(policy, max_bytes, kwargs)


SHAPED = ["10.0.0.1", "::1", "a@b.co", "+1 415 555 0100", "ord_1", "o-1.x", "a:b", "", "x" * 3]


@pytest.mark.parametrize("policy", ["hash", "drop", "keep"])
@pytest.mark.parametrize("key", ["order_id", "x_id", "userId", "email", "ip", "message", "note"])
def test_pii_shaped_values_at_every_level(policy: str, key: str) -> None:
    data = {
        "order_id": "ord_1",
        key: SHAPED[0],
        "items": [{key: v, "n": [{key: v}]} for v in SHAPED],
        "nested": {key: {key: SHAPED}},
    }
    for value in SHAPED:
        _compare(
            policy, 1_048_576, dict(event_type="order.completed", data={**data, key: value}, organization_id="acme")
        )
        _compare(
            policy,
            1_048_576,
            dict(event_type="order.completed", data={**data, key: value}, id=value, organization_id="acme"),
        )


ORDERS = [
    Order(id="o-1", org_id="acme", user_id="u@x.co", email="Buyer@Example.com", total=12.5, currency="eur",
          items=[OrderItem(product_id="p-1", product_name="Tee", sku="T", quantity=2, price=5.0)]),
    Order(id="o-2", total=3, items=[OrderItem(product_id="10.0.0.1", quantity=1, price=3.0)]),
    Order(id="o-3", org_id="acme", email="not an email", currency="", total=0.0),
]  # fmt: skip


@pytest.mark.parametrize("policy", ["hash", "drop", "keep"])
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(
    "data", [None, {"email": "Other@Example.com", "note": {"phone": "+1 415 555 0100"}}, {"revenue": "x"}, {"id": 1}]
)
@pytest.mark.parametrize("event_type", ["order.completed", "order.refunded", "loyalty.points_earned"])
def test_order_events_equal_the_general_steps(policy: str, order: Order, data: Any, event_type: str) -> None:
    for max_bytes in (2150, 2400, 1_048_576):
        _compare(policy, max_bytes, dict(event_type=event_type, order=order, data=data, organization_id=None))


@pytest.fixture
def plans() -> Iterator[dict[str, Any]]:
    saved = dict(_recorder._PLANS)
    _recorder._PLANS.clear()
    yield _recorder._PLANS
    _recorder._PLANS.clear()
    _recorder._PLANS.update(saved)


def test_a_refused_type_gets_no_plan_and_is_checked_again(plans: dict[str, Any]) -> None:
    name = "order.fast_path_registered_later"
    for _ in range(2):
        with pytest.raises(EventValidationError, match=r"unknown event type 'order\.fast_path_registered_later'"):
            build_pending(name, id="x", organization_id="acme")
    assert not plans
    register_event_type(name)
    assert build_pending("commerce." + name, id="x", organization_id="acme").event.type == name  # type: ignore[union-attr]
    assert plans["commerce." + name].type == name and plans["commerce." + name].spec is None
    for bad in (5, None, b"order.completed"):
        with pytest.raises(EventValidationError, match=f"event type must be a string, got {type(bad).__name__}"):
            build_pending(bad, id="x", organization_id="acme")  # type: ignore[arg-type]


def test_plans_are_bounded(plans: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_recorder, "_PLANS_MAX", 3)
    for i in range(6):
        build_pending(f"loyalty.bounded_{i}", id="x", organization_id="acme")
    assert len(plans) == 3
    assert build_pending("loyalty.bounded_5", id="x", organization_id="acme").event.type == "loyalty.bounded_5"  # type: ignore[union-attr]


def test_a_str_subclass_type_is_recorded_as_a_plain_str(plans: dict[str, Any]) -> None:
    class Name(str):
        pass

    for given_type in (Name("order.completed"), Name("commerce.order.completed")):
        event = build_pending(given_type, id="o-1", organization_id="acme").event
        assert event is not None and event.type == "order.completed"
    assert all(type(k) is str for k in plans)


def test_span_context_is_a_tuple_in_this_order() -> None:
    """Contract with opentelemetry-api: build_pending unpacks a SpanContext instead of reading its properties."""
    state = TraceState([("vendor", "v1")])
    sc = SpanContext(0x1234, 0x56, is_remote=True, trace_flags=TraceFlags(1), trace_state=state)
    assert isinstance(sc, tuple)
    assert tuple(sc) == (sc.trace_id, sc.span_id, sc.is_remote, sc.trace_flags, sc.trace_state, sc.is_valid)


class _Context(SpanContext):
    """A SpanContext subclass (another tracer's): read through its properties."""


@pytest.mark.parametrize("cls", [SpanContext, _Context])
@pytest.mark.parametrize("state", [TraceState(), TraceState([("vendor", "v1"), ("b", "2")])])
def test_trace_context_of_a_remote_or_foreign_span(cls: type[SpanContext], state: TraceState) -> None:
    sc = cls(0x0AF7651916CD43DD8448EB211C80319C, 0x00F067AA0BA902B7, True, TraceFlags(1), state)
    token = context.attach(trace.set_span_in_context(NonRecordingSpan(sc)))
    try:
        pending = build_pending("order.completed", id="o-1", organization_id="acme")
    finally:
        context.detach(token)
    assert pending.event is not None
    assert pending.event.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert pending.event.span_id == "00f067aa0ba902b7"
    assert pending.trace_flags == 1 and type(pending.trace_flags) is int
    assert pending.trace_state == state.to_header()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=10), st.text(max_size=10), st.text(max_size=10))
def test_once_event_id_is_event_id_for_once(event_type: str, org: str, entity: str) -> None:
    assert once_event_id(event_type, org, entity) == event_id_for(event_type, org, entity, once=True)


class _OddKeys(Mapping[Any, Any]):
    """A custom mapping whose items() yields keys a dict could not hold (unhashable, or hashing badly)."""

    def __init__(self, pairs: list[tuple[Any, Any]]) -> None:
        self._pairs = pairs

    def __getitem__(self, key: Any) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[Any]:
        return (k for k, _ in self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def items(self) -> list[tuple[Any, Any]]:  # type: ignore[override]
        return list(self._pairs)


class _BadHash:
    def __hash__(self) -> int:
        raise ValueError("no hash")


@pytest.mark.parametrize("policy", ["hash", "drop"])
@pytest.mark.parametrize("key", [["email"], {"a": 1}, _BadHash()])
def test_unhashable_nested_keys_are_refused_with_the_path(policy: str, key: Any) -> None:
    RUNTIME.install(Settings(pii=policy), None)  # type: ignore[arg-type]
    try:
        # nested (a top-level one fails the reserved-keys check first, as before: it hashes every key)
        for data in ({"n": [_OddKeys([(key, 1)])]}, {"order_id": "o-1", "n": {"m": _OddKeys([("a", 1), (key, 1)])}}):
            with pytest.raises(EventValidationError, match="has a non-string key"):
                build_pending("order.completed", id="o-1", organization_id="acme", data=data)
    finally:
        RUNTIME.reset()


def test_catalog_assumptions_of_the_top_level_policy() -> None:
    """The one walk applies the policy to a top-level str under a text / digested key at once, and leaves
    an id key's str without shape characters alone, before the catalog checks and the entity id. That
    equals applying it after them only while: such keys' catalog fields are text fields (any str passes,
    unchanged), id-named fields are text or id fields (never converted), no id template names a text or
    digested key, and neither the money field nor ``currency`` has a PII kind."""
    import string

    from otel_commerce._model._catalog import Kind, field_kinds

    for event_type, spec in CATALOG.items():
        for field, kind, _ in field_kinds(event_type):
            pii = pii_kind(field)
            if pii in (*_WHOLE, "text"):
                assert kind is Kind.STR, (event_type, field)
            if pii == "id":
                assert kind in (Kind.STR, Kind.ID), (event_type, field)
        named = {name for _, name, _, _ in string.Formatter().parse(spec.id) if name}
        assert not {n for n in named if pii_kind(n) in (*_WHOLE, "text")}, (event_type, named)
        assert spec.money is None or pii_kind(spec.money) is None
    assert pii_kind("currency") is None


@pytest.mark.parametrize("policy", ["hash", "drop"])
@pytest.mark.parametrize(
    "pairs",
    [
        [("ip", 5), ("ip", "10.0.0.1")],
        [("phone", 4155550100), ("phone", "+1 415 555 0100")],
        [("email", 5), ("email", "a@b.co")],
        [("email", "a@b.co"), ("email", 5)],
        [("message", ["x"]), ("message", "mail a@b.co")],
        [("order_id", "o-1"), ("email", "a@b.co"), ("order_id", "a@b.co")],
    ],
)
def test_a_multi_mapping_repeating_a_policy_key(policy: str, pairs: list[tuple[str, Any]]) -> None:
    """A repeated top-level key (a multi-mapping's): the last value is checked, then treated once."""
    data = _OddKeys(pairs)
    for event_type in ("order.completed", "loyalty.points_earned"):
        _compare(policy, 1_048_576, dict(event_type=event_type, data=data, id="o-1", organization_id="acme"))


def _trace_ids(pending: Any) -> tuple[str, str]:
    assert pending.event is not None
    return pending.event.trace_id, pending.event.span_id


def test_the_current_span_read_from_the_context_is_get_current_spans() -> None:
    """``build_pending`` reads the span from the current context (``_sdk.current_span_source``) and makes of
    the value what ``trace.get_current_span()`` makes of it: a value that is not a ``Span`` (or none) gives
    no trace ids; a ``Span`` of a type seen for the first time is checked once."""
    assert _recorder._context_get is not None  # the fast read is in use on the API under test
    for value in ("not a span", 5, SpanContext(0x1, 0x2, False)):
        token = context.attach(context.set_value(_recorder._SPAN_KEY, value))
        try:
            assert trace.get_current_span() is trace.INVALID_SPAN
            assert _trace_ids(build_pending("order.completed", id="o-1", organization_id="acme")) == ("", "")
        finally:
            context.detach(token)
    assert str not in _recorder._SPAN_TYPES and int not in _recorder._SPAN_TYPES

    class OtherSpan(NonRecordingSpan):
        pass

    span = OtherSpan(SpanContext(0xABC, 0xDEF, False, TraceFlags(1)))
    _recorder._SPAN_TYPES.discard(OtherSpan)
    for _ in range(2):  # checked, then known
        token = context.attach(trace.set_span_in_context(span))
        try:
            assert _trace_ids(build_pending("order.completed", id="o-1", organization_id="acme")) == (
                "%032x" % 0xABC,  # noqa: UP031
                "%016x" % 0xDEF,  # noqa: UP031
            )
        finally:
            context.detach(token)
        assert OtherSpan in _recorder._SPAN_TYPES


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**129), st.integers(0, 2**65), st.booleans())
def test_trace_ids_are_formatted_as_before(trace_id: int, span_id: int, foreign: bool) -> None:
    """Bytes to hex for a valid API ``SpanContext`` (its ids then fit 16 and 8 bytes), ``%x`` for another
    tracer's: the same text as ``format(id, "032x")`` / ``format(id, "016x")``; no ids when not valid."""
    sc = (_Context if foreign else SpanContext)(trace_id, span_id, False, TraceFlags(1))
    token = context.attach(trace.set_span_in_context(NonRecordingSpan(sc)))
    try:
        got = _trace_ids(build_pending("order.completed", id="o-1", organization_id="acme"))
    finally:
        context.detach(token)
    assert got == ((format(trace_id, "032x"), format(span_id, "016x")) if sc.is_valid else ("", ""))


@pytest.mark.parametrize("policy", ["hash", "drop", "keep"])
@pytest.mark.parametrize(
    "data",
    [
        {"items": [{"a": 1}, {"b": float("nan")}]},
        {"items": [1, 2, [3, {"x": [0, 2**70]}]]},
        {"n": {"list": ["a", "b", "\ud800"]}},
        {"email": ["a@b.co", {"k": float("inf")}]},
        {"items": [{"a": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}]},
        {"items": ({"a": 1}, {"b": object()})},
    ],
)
def test_refused_values_in_lists_are_named_by_their_index(policy: str, data: dict[str, Any]) -> None:
    """The walk names a refused value's index without counting the values before it (they are in the copy)."""
    with pytest.raises(EventValidationError) as expected:
        freeze_data(data)
    assert "[" in str(expected.value)
    _compare(policy, 1_048_576, dict(event_type="order.completed", data=data, id="o-1", organization_id="acme"))
    RUNTIME.install(Settings(pii=policy), None)  # type: ignore[arg-type]
    try:
        with pytest.raises(EventValidationError) as got:
            build_pending("order.completed", data=data, id="o-1", organization_id="acme")
    finally:
        RUNTIME.reset()
    assert str(got.value) == str(expected.value)


class _Key(str):
    """A str subclass key (an enum-like one): equal to, and hashing as, its plain text."""


@pytest.mark.parametrize("policy", ["hash", "drop", "keep"])
@pytest.mark.parametrize(
    "data",
    [
        {"id": "x"},
        {"order_id": "o-1", "unix_ms": 5},
        {"revenue": float("nan"), "event_id": "e"},  # a refused value before the reserved key: reserved first
        {"items": [{"a": 2**70}], "trace_id": "t"},
        {"span_id": "s", "revenue": float("inf")},
        {_Key("id"): "x"},
        {_Key("order_id"): "o-1", _Key("unix_ms"): 1},
        {"nested": {"id": "x", "event_id": "e", "unix_ms": 1}, "order_id": "o-1"},  # nested: not reserved
        {5: "x", "id": "y"},
        {"id": "x", 5: "y"},
        {"n": [{"id": 1}], "m": {"trace_id": {"span_id": 1}}},
    ],
)
@pytest.mark.parametrize("wrap", [dict, _OddKeys])
def test_reserved_keys_are_refused_before_anything_else(policy: str, data: dict[Any, Any], wrap: Any) -> None:
    """A dict's top-level keys are checked for reserved ones by the walk itself (flagged keys, and
    ``check_reserved`` first when the walk refuses a value); the error is the same as before, also when a
    refused value comes first; another Mapping is checked by its keys before the walk, as before."""
    given = data if wrap is dict else _OddKeys(list(data.items()))
    for event_type in ("order.completed", "loyalty.points_earned"):
        _compare(policy, 1_048_576, dict(event_type=event_type, data=given, id="o-1", organization_id="acme"))
    from otel_commerce._record import _pii

    assert not {"id", "event_id", "trace_id", "span_id", "unix_ms"} & set(_pii._TOP_KEYS)


FIELD_VALUES = st.one_of(
    st.none(),
    st.sampled_from(["", " ", "USD", "usd", " eur ", "XYZ", "o-1", "a@b.co", "10.0.0.1"]),
    st.booleans(),
    st.integers(-3, 2**33),
    st.sampled_from([0.0, -0.5, 12.5, 1e14, 1e14 - 1, float("nan"), float("inf"), 2.0**32]),
    st.text(max_size=4),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    event_type=st.sampled_from(sorted(CATALOG)),
    values=st.lists(FIELD_VALUES, min_size=8, max_size=8),
    present=st.lists(st.booleans(), min_size=8, max_size=8),
    with_id=st.booleans(),
    policy=st.sampled_from(["hash", "drop"]),
)
def test_catalog_fields_checked_inline_equal_check_fields(
    event_type: str, values: list[Any], present: list[bool], with_id: bool, policy: str
) -> None:
    """``build_pending`` checks the catalog fields' common valid cases inline and leaves the rest (missing
    required fields, conversions, errors) to ``check_fields``: the same events and the same errors."""
    fields = [f for f, _, _ in field_kinds(event_type)]
    data = {f: v for f, v, p in zip(fields, values, present, strict=False) if p}
    _compare(
        policy,
        1_048_576,
        dict(event_type=event_type, data=data, id="o-1" if with_id else None, organization_id="acme"),
    )
