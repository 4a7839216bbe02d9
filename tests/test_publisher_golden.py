"""Golden envelopes: each of the 20 typed Publisher helpers, read back from a real COMMERCE stream."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

import orjson
import pytest
from nats.js.client import JetStreamContext

from otel_commerce import ALL_SUBJECTS, CATALOG, OrderItem, Publisher, bootstrap, sha256_hex

ITEMS = [
    OrderItem(product_id="p1", product_name="Shirt", sku="SH-1", quantity=2, price=10.0),
    OrderItem(product_id="p2", product_name="Hat", sku="HT-1", quantity=1, price=5.5),
]
GA4_ITEMS = [
    {"item_id": "p1", "item_name": "Shirt", "price": 10.0, "quantity": 2, "currency": "USD"},
    {"item_id": "p2", "item_name": "Hat", "price": 5.5, "quantity": 1, "currency": "USD"},
]
EM = sha256_hex("Alice@Example.com")


def _order(type_: str, ga4: str, meta: str) -> dict[str, Any]:
    return {
        "id": "ord_1",
        "type": type_,
        "organization_id": "acme",
        "user_id": "u1",
        "data": {"order_id": "ord_1", "revenue": 25.5, "currency": "USD", "email": "Alice@Example.com"},
        "ga4": {
            "event_name": ga4,
            "currency": "USD",
            "value": 25.5,
            "items": GA4_ITEMS,
            "parameters": {"transaction_id": "ord_1"},
        },
        "facebook_capi": {
            "event_name": meta,
            "action_source": "website",
            "user_data": {"em": EM, "external_id": "u1"},
            "custom_data": {"currency": "USD", "value": 25.5, "order_id": "ord_1"},
        },
    }


# (helper name, positional args, expected envelope without timestamp / event_time / event_id)
CASES: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    (
        "publish_order_created",
        ("ord_1", "acme", "u1", "Alice@Example.com", 2550, "", ITEMS),
        _order("order.created", "begin_checkout", "InitiateCheckout"),
    ),
    (
        "publish_order_completed",
        ("ord_1", "acme", "u1", "Alice@Example.com", 2550, "USD", ITEMS),
        _order("order.completed", "purchase", "Purchase"),
    ),
    (
        "publish_order_canceled",
        ("ord_1", "acme", "u1", 2550, "EUR", "fraud"),
        {
            "id": "ord_1",
            "type": "order.canceled",
            "organization_id": "acme",
            "user_id": "u1",
            "data": {"order_id": "ord_1", "revenue": 25.5, "currency": "EUR", "reason": "fraud"},
        },
    ),
    (
        "publish_order_refunded",
        ("ord_1", "acme", "u1", 1000, ""),
        {
            "id": "ord_1",
            "type": "order.refunded",
            "organization_id": "acme",
            "user_id": "u1",
            "data": {"order_id": "ord_1", "refunded_amount": 10.0, "currency": "USD"},
            "ga4": {
                "event_name": "refund",
                "currency": "USD",
                "value": 10.0,
                "parameters": {"transaction_id": "ord_1"},
            },
            "facebook_capi": {
                "event_name": "Refund",
                "action_source": "website",
                "user_data": {"external_id": "u1"},
                "custom_data": {"currency": "USD", "value": 10.0, "order_id": "ord_1"},
            },
        },
    ),
    (
        "publish_checkout_started",
        ("sess_1", "acme", 4999, "USD"),
        {
            "id": "sess_1",
            "type": "checkout.started",
            "organization_id": "acme",
            "data": {"session_id": "sess_1", "value": 49.99, "currency": "USD"},
            "ga4": {"event_name": "begin_checkout", "currency": "USD", "value": 49.99},
            "facebook_capi": {
                "event_name": "InitiateCheckout",
                "action_source": "website",
                "custom_data": {"currency": "USD", "value": 49.99},
            },
        },
    ),
    (
        "publish_checkout_failed",
        ("sess_1", "acme", 4999, "USD", "card_declined"),
        {
            "id": "sess_1",
            "type": "checkout.failed",
            "organization_id": "acme",
            "data": {"session_id": "sess_1", "value": 49.99, "currency": "USD", "reason": "card_declined"},
        },
    ),
    (
        "publish_payment_received",
        ("pay_1", "acme", "ord_1", "u1", 2550, "USD"),
        {
            "id": "pay_1",
            "type": "payment.received",
            "organization_id": "acme",
            "user_id": "u1",
            "data": {"payment_id": "pay_1", "order_id": "ord_1", "amount": 25.5, "currency": "USD"},
        },
    ),
    (
        "publish_cart_updated",
        ("cart_1", "acme", "u1", 2550, "USD", ITEMS),
        {
            "id": "cart_1",
            "type": "cart.updated",
            "organization_id": "acme",
            "user_id": "u1",
            "data": {"cart_id": "cart_1", "value": 25.5, "currency": "USD"},
            "ga4": {"event_name": "add_to_cart", "currency": "USD", "value": 25.5, "items": GA4_ITEMS},
            "facebook_capi": {
                "event_name": "AddToCart",
                "action_source": "website",
                "user_data": {"external_id": "u1"},
                "custom_data": {"currency": "USD", "value": 25.5},
            },
        },
    ),
    (
        "publish_product_viewed",
        ("p1", "acme", "u1", "Shirt", 1000, "USD"),
        {
            "id": "p1",
            "type": "product.viewed",
            "organization_id": "acme",
            "user_id": "u1",
            "data": {"product_id": "p1", "product_name": "Shirt", "price": 10.0, "currency": "USD"},
            "ga4": {
                "event_name": "view_item",
                "currency": "USD",
                "value": 10.0,
                "items": [{"item_id": "p1", "item_name": "Shirt", "price": 10.0, "quantity": 1, "currency": "USD"}],
            },
            "facebook_capi": {
                "event_name": "ViewContent",
                "action_source": "website",
                "user_data": {"external_id": "u1"},
                "custom_data": {"currency": "USD", "value": 10.0, "content_ids": ["p1"], "content_type": "product"},
            },
        },
    ),
    (
        "publish_product_created",
        ("karma", "prod_123", "valentina", "Valentina Dress", "SKU-1"),
        {
            "id": "prod_123",
            "type": "product.created",
            "organization_id": "karma",
            "data": {"product_id": "prod_123", "slug": "valentina", "name": "Valentina Dress", "sku": "SKU-1"},
        },
    ),
    (
        "publish_product_updated",
        ("karma", "prod_123", "valentina", "Valentina Dress", "SKU-1"),
        {
            "id": "prod_123",
            "type": "product.updated",
            "organization_id": "karma",
            "data": {"product_id": "prod_123", "slug": "valentina", "name": "Valentina Dress", "sku": "SKU-1"},
        },
    ),
    (
        "publish_referral_link_created",
        ("acme", "u1", "REF1", "https://x.test/r/REF1"),
        {
            "id": "REF1",
            "type": "referral.link_created",
            "organization_id": "acme",
            "user_id": "u1",
            "data": {"referral_code": "REF1", "referral_url": "https://x.test/r/REF1"},
        },
    ),
    (
        "publish_referral_claimed",
        ("acme", "u1", "u2", "REF1"),
        {
            "id": "u2",
            "type": "referral.claimed",
            "organization_id": "acme",
            "user_id": "u2",
            "data": {"referrer_id": "u1", "referee_id": "u2", "referral_code": "REF1"},
        },
    ),
    (
        "publish_referral_credit_granted",
        ("acme", "u1", "referrer", 500, ""),
        {
            "id": "credit-u1-<ms>",
            "type": "referral.credit_granted",
            "organization_id": "acme",
            "user_id": "u1",
            "data": {"role": "referrer", "amount": 5.0, "currency": "USD"},
        },
    ),
    (
        "publish_referral_commission_earned",
        ("acme", "u1", "ord_1", 250, "USD"),
        {
            "id": "commission-u1-ord_1",
            "type": "referral.commission_earned",
            "organization_id": "acme",
            "user_id": "u1",
            "data": {"order_id": "ord_1", "commission": 2.5, "currency": "USD"},
        },
    ),
    (
        "publish_referral_payout_sent",
        ("acme", "u1", "po_1", 12000, "USD"),
        {
            "id": "po_1",
            "type": "referral.payout_sent",
            "organization_id": "acme",
            "user_id": "u1",
            "data": {"payout_id": "po_1", "amount": 120.0, "currency": "USD"},
        },
    ),
    (
        "publish_referral_tier_upgraded",
        ("acme", "u1", "silver", "gold", 10),
        {
            "id": "tier-u1-<ms>",
            "type": "referral.tier_upgraded",
            "organization_id": "acme",
            "user_id": "u1",
            "data": {"previous_tier": "silver", "new_tier": "gold", "referral_count": 10},
        },
    ),
    (
        "publish_contributor_registered",
        ("acme", "u1", "octocat"),
        {
            "id": "u1",
            "type": "contributor.registered",
            "organization_id": "acme",
            "user_id": "u1",
            "data": {"github_username": "octocat"},
        },
    ),
    (
        "publish_contributor_payout_calculated",
        ("acme", "u1", "2026-10", 9900, "USD"),
        {
            "id": "payout-calc-u1-2026-10",
            "type": "contributor.payout_calculated",
            "organization_id": "acme",
            "user_id": "u1",
            "data": {"period_month": "2026-10", "amount": 99.0, "currency": "USD"},
        },
    ),
    (
        "publish_contributor_payout_sent",
        ("acme", "u1", "po_9", "2026-10", 9900, "USD"),
        {
            "id": "po_9",
            "type": "contributor.payout_sent",
            "organization_id": "acme",
            "user_id": "u1",
            "data": {"payout_id": "po_9", "period_month": "2026-10", "amount": 99.0, "currency": "USD"},
        },
    ),
]


def test_cases_cover_every_catalog_type() -> None:
    """The golden table has exactly one case per catalog type (20), each with its helper."""
    types = sorted(c[2]["type"] for c in CASES)
    assert types == sorted(CATALOG) and len(types) == 20
    assert sorted("commerce." + t for t in types) == sorted(ALL_SUBJECTS)
    for name, _, expected in CASES:
        assert name == "publish_" + expected["type"].replace(".", "_")


@pytest.mark.parametrize(("helper", "args", "expected"), CASES, ids=[c[0] for c in CASES])
async def test_golden_envelope(
    js: JetStreamContext, helper: str, args: tuple[Any, ...], expected: dict[str, Any]
) -> None:
    """The helper's message on commerce.<type> equals the Go envelope key by key (plus event_id)."""
    await bootstrap(js)
    before = datetime.now(timezone.utc).timestamp()
    ack = await getattr(Publisher(js), helper)(*args)
    assert ack is not None and ack.stream == "COMMERCE" and not ack.duplicate
    msg = await js.get_msg("COMMERCE", ack.seq)  # this publish's own message, not the subject's last one
    assert msg.subject == "commerce." + expected["type"]
    got = orjson.loads(msg.data)
    assert msg.headers is not None and msg.headers["Nats-Msg-Id"] == got["event_id"]
    uuid.UUID(got.pop("event_id"))
    ts = datetime.fromisoformat(got.pop("timestamp").replace("Z", "+00:00"))
    assert ts.tzinfo is not None and before - 1 <= ts.timestamp() <= before + 60
    if "facebook_capi" in got:
        event_time = got["facebook_capi"].pop("event_time")
        assert type(event_time) is int and abs(event_time - ts.timestamp()) < 2
    if "<ms>" in expected["id"]:
        prefix = expected["id"].split("<ms>")[0]
        assert got["id"].startswith(prefix) and got["id"][len(prefix) :].isdigit()
        expected = {**expected, "id": got["id"]}
    assert "trace_id" not in got and "span_id" not in got  # no active span
    assert got == expected
    # ints stay ints where Go has int fields
    for item in got.get("ga4", {}).get("items", []):
        assert type(item["quantity"]) is int
    if "referral_count" in got["data"]:
        assert type(got["data"]["referral_count"]) is int
