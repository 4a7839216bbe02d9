"""The one-pass encoder (``encode_envelope``, the JetStream sink's path) writes the very bytes of the
previous path, ``apply_marketing(event, items).to_json()``, for every catalog type and its variants."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_commerce import CATALOG, CommerceEvent, OrderItem
from otel_commerce._model import apply_marketing, event_from_args, new_event
from otel_commerce._model._catalog import Kind
from otel_commerce._model._wire import encode_envelope
from otel_commerce._record import build_pending
from otel_commerce._sinks import JetStreamSink, headers_for_ids
from otel_commerce._sinks._jetstream import event_header_block, header_block
from otel_commerce._sinks._selftrace import message_headers

ITEMS = [
    OrderItem(product_id="p1", product_name="Shirt", sku="SH-1", quantity=2, price=10.0),
    OrderItem(product_id="p2", product_name="Hat <&>", sku="HT-1", quantity=1, price=5),
]


def _arg(kind: Kind, name: str, variant: int) -> Any:
    if kind is Kind.ID:
        return f"{name}-é{variant}"
    if kind is Kind.STR:
        return ["", "Alice@Example.com" if "email" in name else f"{name} \u2028 v", "x"][variant % 3]
    if kind is Kind.CENTS:
        return [0, 2550, 1][variant % 3]
    if kind is Kind.UNITS:
        return [0.0, 25.5, 1e-7][variant % 3]
    if kind in (Kind.CURRENCY, Kind.CURRENCY_RAW):
        return ["", "usd", "EUR"][variant % 3]
    if kind is Kind.COUNT:
        return [0, 3, 1][variant % 3]
    if kind is Kind.ITEMS:
        return [None, ITEMS, []][variant % 3]
    raise AssertionError(kind)


def _old_path(event: Any, items: Any) -> bytes:
    event = copy.deepcopy(event)
    return bytes(apply_marketing(event, items).to_json())


@pytest.mark.parametrize("event_type", sorted(CATALOG))
@pytest.mark.parametrize("variant", [0, 1, 2])
def test_every_catalog_type_encodes_to_the_old_bytes(event_type: str, variant: int) -> None:
    spec = CATALOG[event_type]
    args = {p.name: _arg(p.kind, p.name, variant) for p in spec.publish}
    event, items = event_from_args(event_type, args)
    event.event_id = f"eid-{variant}"
    if variant == 1:
        event.trace_id, event.span_id, event.session_id = "ab" * 16, "cd" * 8, "sess-1"
    if variant == 2:  # naive timestamp = UTC
        event.timestamp = datetime(2024, 2, 29, 23, 59, 59, 120000)
    before = copy.deepcopy(event)
    assert encode_envelope(event, items) == _old_path(event, items)
    assert event == before  # the event is not changed (no blocks filled in)


@pytest.mark.parametrize("event_type", sorted(CATALOG))
def test_recorded_events_encode_to_the_old_bytes(event_type: str) -> None:
    """Events built by record_event's path (PII digests, frozen data), blocks pre-filled or not."""
    data: dict[str, Any] = {
        "order_id": "o-1", "revenue": 12.5, "value": 3, "price": 0.0, "currency": "USD", "email": "B@x.io",
        "product_id": "p9", "product_name": "Mug", "refunded_amount": 2.0, "reason": "r", "user_id": "shadowed",
        "items": ["shadowed"], "nested": {"a": [1, 2.5, None, True]},
    }  # fmt: skip
    pending = build_pending(event_type, organization_id="acme", user_id="u-7", data=data, id="ent-1")
    assert pending.event is not None
    assert encode_envelope(pending.event, pending.items) == _old_path(pending.event, pending.items)
    apply_marketing(pending.event, pending.items)  # blocks set beforehand (Publisher, replays): encoded as given
    assert encode_envelope(pending.event, pending.items) == pending.event.to_json()


def test_custom_type_and_preset_blocks() -> None:
    event = new_event("custom.thing", id="c-1", organization_id="acme", data={"k": "v"},
                      timestamp=datetime(2020, 1, 1, tzinfo=timezone.utc))  # fmt: skip
    assert encode_envelope(event) == _old_path(event, [])
    ev, items = event_from_args(
        "order.completed",
        {"order_id": "o", "org_name": "acme", "user_id": "u", "email": "a@b.co", "total_cents": 100,
         "currency_code": "USD", "items": ITEMS},
    )  # fmt: skip
    apply_marketing(ev, items)
    assert ev.ga4 is not None and ev.facebook_capi is not None
    ev.ga4.value = 99.0  # a caller-set block wins over the catalog, as with apply_marketing
    ev.facebook_capi = None
    assert encode_envelope(ev, items) == _old_path(ev, items)


@settings(max_examples=120, deadline=None)
@given(
    st.sampled_from(sorted(CATALOG)),
    st.dictionaries(
        st.sampled_from(["order_id", "revenue", "value", "price", "currency", "email", "product_id",
                         "product_name", "transaction_id", "user_id", "items", "x"]),
        st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5)),
        max_size=8,
    ),
    st.text(max_size=4),
)
def test_any_data_encodes_to_the_old_bytes(event_type: str, data: dict[str, Any], user_id: str) -> None:
    # built without validation: the encoders must agree on whatever reaches them
    event = CommerceEvent(id="h-1", type=event_type, organization_id="acme", user_id=user_id, data=dict(data),
                          timestamp=datetime(2030, 5, 6, 7, 8, 9, 1, tzinfo=timezone.utc))  # fmt: skip
    assert _outcome(encode_envelope, event, ITEMS) == _outcome(_old_path, event, ITEMS)


def _outcome(fn: Any, event: Any, items: Any) -> Any:
    """The bytes, or the type of the error (e.g. a ``price`` that is no number: both paths refuse it)."""
    try:
        return fn(event, items)
    except Exception as exc:
        return type(exc)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.uuids().map(str), st.text(max_size=8)),
    st.one_of(st.just("ab" * 16), st.just("0" * 32), st.text(alphabet="0123456789abcdef", max_size=33)),
    st.one_of(st.just("cd" * 8), st.just("0" * 16), st.text(alphabet="0123456789abcdef", max_size=17)),
    st.integers(0, 511),
    st.one_of(st.just(""), st.just("k=v,x=y"), st.text(max_size=6)),
)
def test_the_sinks_header_block_is_the_one_nats_py_writes_for_the_old_headers(
    event_id: str, trace_id: str, span_id: str, flags: int, state: str
) -> None:
    """The sink writes its header block directly; it is byte for byte the block nats-py wrote for the headers
    dict the sink used to pass (``headers_for_ids``), and self-tracing reads the same headers back."""
    headers = headers_for_ids({"Nats-Msg-Id": event_id}, trace_id, span_id, flags, state)
    block = event_header_block(event_id, trace_id, span_id, flags, state)
    assert block == header_block(headers)
    if all("\r" not in v and "\n" not in v and v == v.strip() for v in headers.values()):
        assert message_headers(("s", b"", None, 0, block)) == headers


def test_prepare_gives_the_old_message(uid: str) -> None:
    pending = build_pending("order.completed", organization_id="acme", user_id="u", id=f"{uid}-o",
                            data={"order_id": f"{uid}-o", "revenue": 9.5, "currency": "EUR", "email": "a@b.co"})  # fmt: skip
    assert pending.event is not None
    pending.event.trace_id, pending.event.span_id, pending.trace_state = "12" * 16, "34" * 8, "v=1"
    (subject, payload, _, wire_size, hdr), size = JetStreamSink("nats://127.0.0.1:1").prepare(pending)  # type: ignore[misc]
    ev = pending.event
    old_headers = headers_for_ids({"Nats-Msg-Id": ev.event_id}, ev.trace_id, ev.span_id, pending.trace_flags, "v=1")
    assert (subject, payload, hdr) == (ev.subject, _old_path(ev, pending.items), header_block(old_headers))
    assert wire_size == len(payload) + len(hdr) and size == len(payload)


@pytest.mark.parametrize(
    "ts",
    [
        datetime(1970, 1, 1, 0, 0, 0, 500000, tzinfo=timezone.utc),  # the first accepted second: floored
        datetime(2024, 1, 1, 12, 0, 0, 999999, tzinfo=timezone.utc),
        datetime(2024, 1, 1, 12, 0, 0, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2001, 9, 9, 1, 46, 40),  # naive = UTC
    ],
)
def test_capi_event_time_is_the_old_one(ts: datetime) -> None:
    event = new_event("order.completed", id="t-1", organization_id="acme", data={"order_id": "t-1"}, timestamp=ts)
    assert encode_envelope(event) == _old_path(event, [])


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1)),
    st.sampled_from([timezone.utc, None, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(0))]),
    st.sampled_from([0, 1, 10, 120000, 500000, 999999, None]),
)
def test_the_encoders_timestamp_and_event_time_are_the_old_ones(ts: datetime, tz: Any, micro: int | None) -> None:
    """The encoder's own formatting (a per-second cache for aware UTC timestamps) gives the old strings."""
    from otel_commerce._model._envelope import format_timestamp
    from otel_commerce._model._time import to_unix_seconds
    from otel_commerce._model._wire import _stamp

    ts = ts.replace(tzinfo=tz) if micro is None else ts.replace(tzinfo=tz, microsecond=micro)
    assert _stamp(ts) == (format_timestamp(ts), to_unix_seconds(ts))
    assert _stamp(ts) == (format_timestamp(ts), to_unix_seconds(ts))  # cached second


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2300, 1, 1)),
    st.sampled_from([timezone.utc, None, timezone(timedelta(hours=-3)), timezone(timedelta(0))]),
    st.sampled_from([0, 1, 10, 500000, 999999, None]),
)
def test_the_compiled_encoders_inline_timestamp_is_the_old_one(ts: datetime, tz: Any, micro: int | None) -> None:
    """The per-row encoders inline the timestamp fast path (aware UTC below 2**32 s; the rest through _stamp):
    envelope ``timestamp`` and CAPI ``event_time`` as the old path writes them, across the fast path's edges."""
    ts = ts.replace(tzinfo=tz) if micro is None else ts.replace(tzinfo=tz, microsecond=micro)
    event = new_event("order.completed", id="t-1", organization_id="acme", data={"order_id": "t-1"}, timestamp=ts)
    assert encode_envelope(event) == _old_path(event, [])
    assert encode_envelope(event) == _old_path(event, [])  # cached second


@pytest.mark.parametrize(
    "ts",
    [
        datetime(2106, 2, 7, 6, 28, 15, 999999, tzinfo=timezone.utc),  # the last microsecond below 2**32 s
        datetime(2106, 2, 7, 6, 28, 16, tzinfo=timezone.utc),  # 2**32 s: the slow path
        datetime(2106, 2, 7, 6, 28, 16, 1, tzinfo=timezone.utc),
        datetime(1970, 1, 1, tzinfo=timezone.utc),
        datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=timezone.utc),
    ],
)
def test_the_fast_timestamp_paths_edges(ts: datetime) -> None:
    event = new_event("order.completed", id="t-1", organization_id="acme", data={"order_id": "t-1"}, timestamp=ts)
    assert encode_envelope(event) == _old_path(event, [])


@pytest.mark.parametrize(
    "email",
    [
        "ab" * 32,  # a lower-case hex digest (the PII policy's): kept as is
        "AB" * 32,  # upper case: hashed like an address
        "ab" * 31 + "a",  # 63 characters
        "ab" * 31 + "ag",  # 64, one not hex
        "ab" * 31 + "aé",  # 64, one not ASCII
        "ab" * 31 + "a\u0660",  # 64, an Arabic-Indic digit (a decimal digit, not hex)
        "  " + "ab" * 31,
    ],
)
def test_capi_email_digest_check_is_the_old_one(email: str) -> None:
    """The encoders' digest check (ASCII, 64 lower-case hex characters: kept, else hashed) decides as the old
    ``[0-9a-f]{64}`` fullmatch did, on the compiled path and on the preset-block path."""
    event = new_event("order.completed", id="t-1", organization_id="acme", data={"order_id": "t-1", "email": email})
    assert encode_envelope(event) == _old_path(event, [])
    event.ga4 = copy.deepcopy(apply_marketing(copy.deepcopy(event), []).ga4)  # the preset-block path
    assert encode_envelope(event) == _old_path(event, [])
