"""The wire model: Go omitempty rules, timestamps, round-trips, hashing and normalisers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
import pytest

import otel_commerce
from otel_commerce import (
    CommerceEvent,
    EventValidationError,
    FacebookCAPIEvent,
    FacebookUserData,
    GA4EcommerceEvent,
    GA4Item,
    LineItemInfo,
    OrderItem,
    capi_hash,
    sha256_hex,
    to_order_items,
)
from otel_commerce._model import format_timestamp, parse_timestamp

TS = datetime(2026, 11, 24, 10, 0, 0, 120000, tzinfo=timezone.utc)


def test_minimal_envelope_keys_and_presence() -> None:
    """Empty user/session and absent ga4/capi are omitted; data is always present (even empty)."""
    ev = CommerceEvent(id="o1", type="order.completed", timestamp=TS, organization_id="acme")
    assert orjson.loads(ev.to_json()) == {
        "id": "o1",
        "type": "order.completed",
        "timestamp": "2026-11-24T10:00:00.12Z",
        "organization_id": "acme",
        "data": {},
    }


def test_ga4_and_capi_omitempty() -> None:
    """GA4 value 0, empty items/params and empty CAPI fields are omitted; user_data present-but-empty is {}."""
    ga4 = GA4EcommerceEvent(event_name="refund", value=0.0)
    assert ga4.to_dict() == {"event_name": "refund"}
    capi = FacebookCAPIEvent(event_name="Purchase", event_time=1, user_data=FacebookUserData())
    assert capi.to_dict() == {"event_name": "Purchase", "event_time": 1, "action_source": "website", "user_data": {}}
    item = GA4Item(item_id="p", item_name="n", price=2, quantity=3)
    d = item.to_dict()
    assert d == {"item_id": "p", "item_name": "n", "price": 2.0, "quantity": 3}
    assert type(d["price"]) is float and type(d["quantity"]) is int


@pytest.mark.parametrize(
    ("ts", "text"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc), "2026-01-02T03:04:05Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 100, tzinfo=timezone.utc), "2026-01-02T03:04:05.0001Z"),
        (datetime(2026, 1, 2, 5, 4, 5, 500000, tzinfo=timezone(timedelta(hours=2))), "2026-01-02T03:04:05.5Z"),
        (datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05Z"),
    ],
)
def test_timestamp_is_go_rfc3339nano(ts: datetime, text: str) -> None:
    """Timestamps are UTC with Z and trimmed fractional zeros, like Go's RFC3339Nano."""
    assert format_timestamp(ts) == text


def test_parse_go_nanosecond_timestamps() -> None:
    """Go's nanosecond timestamps and offsets decode (truncated to microseconds, in UTC)."""
    assert parse_timestamp("2026-01-02T03:04:05.123456789Z") == datetime(
        2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc
    )
    assert parse_timestamp("2026-01-02T05:04:05+02:00") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    for bad in ["yesterday", "2026-01-02T03:04:05", ""]:
        with pytest.raises(EventValidationError):
            parse_timestamp(bad)


def test_full_round_trip() -> None:
    """Encoding then decoding a full envelope gives back an equal object and identical JSON."""
    ev = CommerceEvent(
        id="o1",
        type="order.completed",
        timestamp=TS,
        organization_id="acme",
        user_id="u1",
        session_id="s1",
        data={"order_id": "o1", "revenue": 10.0, "nested": {"a": [1, 2]}},
        ga4=GA4EcommerceEvent(
            event_name="purchase",
            currency="USD",
            value=10.0,
            items=[GA4Item(item_id="p", item_name="n", price=10.0, quantity=1, currency="USD", item_brand="b")],
            parameters={"transaction_id": "o1"},
        ),
        facebook_capi=FacebookCAPIEvent(
            event_name="Purchase",
            event_time=1700000000,
            user_data=FacebookUserData(email=sha256_hex("a@b.c"), external_id="u1", fbp="fb.1"),
            custom_data={"value": 10.0},
        ),
        event_id="0193c7e0-0000-7000-8000-000000000000",
        trace_id="0" * 31 + "1",
        span_id="0" * 15 + "2",
    )
    raw = ev.to_json()
    back = CommerceEvent.from_json(raw)
    assert back == ev
    assert back.to_json() == raw


def test_decode_go_envelope_ignores_unknown_keys() -> None:
    """A Go-encoded envelope (ints printed as 10, nanosecond time, extra keys) decodes."""
    raw = (
        b'{"id":"o1","type":"order.completed","timestamp":"2026-11-24T10:00:00.123456789Z",'
        b'"organization_id":"acme","data":{"revenue":10},"ga4":{"event_name":"purchase","value":10},'
        b'"future_field":true}'
    )
    ev = CommerceEvent.from_json(raw)
    assert ev.ga4 is not None and ev.ga4.value == 10.0 and ev.data == {"revenue": 10}
    assert ev.subject == "commerce.order.completed"


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[]", b'{"id":"o","type":"t","timestamp":"x","organization_id":"a"}', b'{"id":1}'],
)
def test_decode_errors_are_typed(raw: bytes) -> None:
    """Malformed envelopes raise EventValidationError, not KeyError/TypeError."""
    with pytest.raises(EventValidationError):
        CommerceEvent.from_json(raw)


def test_to_order_items_converts_cents() -> None:
    """LineItemInfo cents become OrderItem float units (Go ToOrderItems)."""
    items = to_order_items([LineItemInfo("p1", "Shirt", "SKU", 2, 1999)])
    assert items == [OrderItem("p1", "Shirt", "SKU", 2, 19.99)]
    assert to_order_items([]) == [] and to_order_items(None) == []


def test_sha256_hex_matches_go() -> None:
    """sha256_hex trims and lowercases before hashing and returns '' for empty input."""
    assert sha256_hex("  Alice@Example.COM ") == sha256_hex("alice@example.com")
    assert sha256_hex("alice@example.com") == "ff8d9819fc0e12bf0d24892e45987e249a28dce836a85cad60e28eaaa8c6d976"
    assert sha256_hex("") == "" and sha256_hex("   ") == ""


@pytest.mark.parametrize(
    ("key", "raw", "normalised"),
    [
        ("em", " John@Example.com ", "john@example.com"),
        ("ph", "+44 (0)20-7946 0958", "442079460958"),
        ("ph", "0044 20 7946", "442079 46".replace(" ", "")),
        ("fn", "Mary-Jane!", "maryjane"),
        ("ct", "New York", "newyork"),
        ("zp", "94025-1234", "940251234"),
        ("country", "US", "us"),
        ("external_id", " u1 ", "u1"),
    ],
)
def test_capi_normalisers(key: str, raw: str, normalised: str) -> None:
    """CAPI fields are normalised per Meta's rules before hashing."""
    assert capi_hash(key, raw) == capi_hash(key, normalised) != ""


def test_capi_never_hashes_ip_agent_fbc_and_keeps_prehashed() -> None:
    """IP, user agent, fbc, fbp pass through; an existing SHA-256 digest is not hashed twice."""
    assert capi_hash("client_ip_address", "10.0.0.1") == "10.0.0.1"
    assert capi_hash("fbp", "fb.1.2") == "fb.1.2"
    h = sha256_hex("a@b.c")
    assert capi_hash("em", h) == h
    assert capi_hash("em", "") == ""


# The complete public API, sorted. A name removed from otel_commerce.__all__ fails the test below; a name
# added there must be added here on purpose.
PUBLIC_API = [
    "ALL_SUBJECTS",
    "BootstrapResult",
    "CATALOG",
    "Client",
    "CollectorSink",
    "CommerceError",
    "CommerceEvent",
    "CommerceLogExporter",
    "CommerceLogRecordProcessor",
    "CommerceSpanExporter",
    "ConfigurationError",
    "DEFAULT_DUPLICATE_WINDOW_SECONDS",
    "DeliveryEngine",
    "DeliveryError",
    "EventSpec",
    "EventValidationError",
    "FacebookCAPIEvent",
    "FacebookUserData",
    "GA4EcommerceEvent",
    "GA4Item",
    "JetStreamSink",
    "LineItemInfo",
    "Order",
    "OrderItem",
    "PayloadTooLargeError",
    "Pending",
    "PermanentDeliveryError",
    "Publisher",
    "STREAM_NAME",
    "STREAM_SUBJECTS",
    "SUBJECT_CART_UPDATED",
    "SUBJECT_CHECKOUT_FAILED",
    "SUBJECT_CHECKOUT_STARTED",
    "SUBJECT_CONTRIBUTOR_PAYOUT_CALC",
    "SUBJECT_CONTRIBUTOR_PAYOUT_SENT",
    "SUBJECT_CONTRIBUTOR_REGISTERED",
    "SUBJECT_ORDER_CANCELED",
    "SUBJECT_ORDER_COMPLETED",
    "SUBJECT_ORDER_CREATED",
    "SUBJECT_ORDER_REFUNDED",
    "SUBJECT_PAYMENT_RECEIVED",
    "SUBJECT_PREFIX",
    "SUBJECT_PRODUCT_CREATED",
    "SUBJECT_PRODUCT_UPDATED",
    "SUBJECT_PRODUCT_VIEWED",
    "SUBJECT_REFERRAL_CLAIMED",
    "SUBJECT_REFERRAL_COMMISSION_EARNED",
    "SUBJECT_REFERRAL_CREDIT_GRANTED",
    "SUBJECT_REFERRAL_LINK_CREATED",
    "SUBJECT_REFERRAL_PAYOUT_SENT",
    "SUBJECT_REFERRAL_TIER_UPGRADED",
    "Settings",
    "StreamError",
    "TransientDeliveryError",
    "__version__",
    "bootstrap",
    "capi_hash",
    "commerce_event",
    "configure",
    "consume_span",
    "extract_context",
    "flush",
    "normalize_capi",
    "record_event",
    "register_event_type",
    "sha256_hex",
    "shutdown",
    "spec_for",
    "stats",
    "subject_for",
    "to_order_items",
    "transaction",
    "type_for",
    "validate_subject",
]


def test_public_api_is_guarded() -> None:
    """__all__ is exactly PUBLIC_API (a removed OR an added name fails here), sorted, and every name exists."""
    names = otel_commerce.__all__
    assert names == PUBLIC_API, (
        f"removed: {sorted(set(PUBLIC_API) - set(names))}, added: {sorted(set(names) - set(PUBLIC_API))}"
    )
    assert names == sorted(names)
    for name in names:
        assert hasattr(otel_commerce, name), name
    exported = {n for n in dir(otel_commerce) if not n.startswith("_") and n not in PUBLIC_API}
    assert not {n for n in exported if not isinstance(getattr(otel_commerce, n), type(otel_commerce))}, exported
    assert len([n for n in names if n.startswith("SUBJECT_") and n != "SUBJECT_PREFIX"]) == 20
    assert otel_commerce.STREAM_SUBJECTS == ["commerce.>"] and otel_commerce.STREAM_NAME == "COMMERCE"
    assert otel_commerce.subject_for("order.completed") == otel_commerce.SUBJECT_ORDER_COMPLETED
    assert otel_commerce.type_for("commerce.referral.claimed") == "referral.claimed"
