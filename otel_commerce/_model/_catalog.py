"""The event catalog: one row per event type, and the few generic functions that read it.

A row says everything about a type: its subject, how its ``id`` is made, its idempotency policy
(DESIGN.md "Identity of an event"), its ``data`` fields, its GA4 and Meta CAPI mappings, the typed
``Publisher`` helper's signature (Go order, integer cents) and the collector event (facts §2, §4),
with the typed ``Client`` emitter's signature where Go has one (float units). Every typed helper is a
one-line call into :func:`event_from_args` / :func:`collector_from_args`; nothing is hand-built per type.
"""

from __future__ import annotations

import contextlib
import difflib
import enum
import functools
import math
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import orjson

from .._config import DEFAULT_MAX_EVENT_BYTES
from .._errors import EventValidationError
from ._envelope import (
    INT64_MAX,
    INT64_MIN,
    CommerceEvent,
    FacebookCAPIEvent,
    FacebookUserData,
    GA4EcommerceEvent,
    GA4Item,
    Order,
    OrderItem,
    check_text,
    clean_data,
    format_timestamp,
    freeze_data,
)
from ._hashing import capi_hash
from ._identity import event_id_for
from ._subjects import subject_for
from ._time import to_unix_ms, to_unix_seconds

__all__ = [
    "CATALOG",
    "CollectorRule",
    "EventSpec",
    "GA4Rule",
    "Kind",
    "MetaRule",
    "Param",
    "CATALOG_NAMESPACES",
    "COLLECTOR_MAX_QUANTITY",
    "COLLECTOR_MAX_REVENUE",
    "RESERVED_DATA_KEYS",
    "apply_marketing",
    "check_catalog_type",
    "check_data",
    "check_envelope",
    "items_size",
    "check_fields",
    "check_ids",
    "is_currency_code",
    "register_event_type",
    "required_fields",
    "collector_from_args",
    "collector_from_event",
    "entity_id",
    "event_from_args",
    "fields_from_order",
    "new_event",
    "spec_for",
]


class Kind(enum.Enum):
    """How an argument is validated and normalised."""

    ID = "id"  # non-empty string
    STR = "str"  # string, may be empty
    CENTS = "cents"  # int >= 0, sent as float units (cents / 100)
    UNITS = "units"  # finite float >= 0, in currency units
    CURRENCY = "currency"  # ISO 4217 code; "" means "USD" (Publisher, as in Go)
    CURRENCY_RAW = "currency_raw"  # ISO 4217 code or "" (Client, sent as given, as in Go)
    COUNT = "count"  # int >= 0
    ITEMS = "items"  # list of OrderItem (or None)


_REQUIRED: Any = object()


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of a typed helper: Python name, canonical field, kind, default."""

    name: str
    field: str
    kind: Kind = Kind.STR
    default: Any = _REQUIRED


@dataclass(frozen=True, slots=True)
class GA4Rule:
    """GA4 mapping: event name, the field holding ``value``, items source and parameters."""

    event: str
    value: str | None = None
    items: str | None = None  # "items" (the order's items) or "product" (one viewed product)
    params: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class MetaRule:
    """Meta CAPI mapping. ``user_data`` is None when Go sends no user_data block.

    ``custom`` values name a field, or are ``=literal`` or ``[]field`` (wrapped in a list).
    """

    event: str
    user_data: tuple[tuple[str, str], ...] | None
    custom: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class CollectorRule:
    """Collector (Hanzo analytics) mapping: top-level keys, properties, and the Client emitter."""

    top: tuple[tuple[str, str], ...]
    props: tuple[str, ...]
    emit: tuple[Param, ...] | None = None  # the typed Client emitter's signature (Go order)


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One row of the catalog."""

    type: str
    once: bool  # idempotency: True = one event per entity (UUIDv5), False = repeats (UUIDv7)
    id: str  # template over fields (+ {unix_ms}), e.g. "credit-{user_id}-{unix_ms}"
    user: str | None  # field that becomes the envelope's user_id
    data: tuple[str, ...]  # envelope data keys, each a field
    money: str | None  # field holding the amount in currency units (attributes, collector revenue)
    publish: tuple[Param, ...]  # typed Publisher helper (Go order, integer cents)
    ga4: GA4Rule | None
    meta: MetaRule | None
    collector: CollectorRule
    go: bool = True  # Go publishes this type

    @property
    def subject(self) -> str:
        return "commerce." + self.type

    @property
    def collector_event(self) -> str:
        return self.type.replace(".", "_")


# --------------------------------------------------------------------------- the table
def _p(name: str, kind: Kind = Kind.STR, field: str | None = None, default: Any = _REQUIRED) -> Param:
    return Param(name, field or name, kind, default)


_ORG = _p("org_id", Kind.ID, "organization_id")
_ORG_NAME = _p("org_name", Kind.ID, "organization_id")
_CUR = _p("currency_code", Kind.CURRENCY, "currency", "")
_CUR_RAW = _p("currency", Kind.CURRENCY_RAW)
_ITEMS = _p("items", Kind.ITEMS, default=None)
_USER = ("distinct_id", "user_id")
_ORG_TOP = ("organization_id", "organization_id")
_EM_EXT = (("em", "email"), ("external_id", "user_id"))
_ORDER_CUSTOM = (("currency", "currency"), ("value", "revenue"), ("order_id", "order_id"))
_TXN = (("transaction_id", "order_id"),)


def _order_row(type_: str, ga4: str, meta: str, emit: tuple[Param, ...] | None) -> EventSpec:
    # Only a completed order is revenue for the collector (Go's emit_order_completed).
    revenue = (("revenue", "revenue"), ("quantity", "quantity")) if emit else ()
    return EventSpec(
        type=type_,
        once=True,
        id="{order_id}",
        user="user_id",
        data=("order_id", "revenue", "currency", "email"),
        money="revenue",
        publish=(
            _p("order_id", Kind.ID),
            _ORG_NAME,
            _p("user_id"),
            _p("email"),
            _p("total_cents", Kind.CENTS, "revenue"),
            _CUR,
            _ITEMS,
        ),
        ga4=GA4Rule(ga4, value="revenue", items="items", params=_TXN),
        meta=MetaRule(meta, _EM_EXT, _ORDER_CUSTOM),
        collector=CollectorRule(
            top=(_USER, _ORG_TOP, ("order_id", "order_id"), *revenue),
            props=("currency", "items", "item_count", "status", "email"),
            emit=emit,
        ),
    )


def _product_row(type_: str, once: bool) -> EventSpec:
    return EventSpec(
        type=type_,
        once=once,
        id="{product_id}",
        user=None,
        data=("product_id", "slug", "name", "sku"),
        money=None,
        publish=(_ORG, _p("product_id", Kind.ID), _p("slug"), _p("name"), _p("sku")),
        ga4=None,
        meta=None,
        collector=CollectorRule(top=(_ORG_TOP,), props=("product_id", "slug", "name", "sku")),
    )


def _amount_row(
    type_: str,
    *,
    once: bool,
    id_: str,
    user: str,
    lead: tuple[Param, ...],
    data: tuple[str, ...],
    money: str,
    emit: bool,
    top: tuple[tuple[str, str], ...] = (),
    go: bool = True,
) -> EventSpec:
    """A referral / contributor money event: ``lead`` params, then ``<money>_cents, currency_code``."""
    return EventSpec(
        type=type_,
        once=once,
        id=id_,
        user=user,
        data=data,
        money=money,
        publish=(*lead, _p(f"{money}_cents", Kind.CENTS, money), _CUR),
        ga4=None,
        meta=None,
        collector=CollectorRule(
            top=(("distinct_id", user), _ORG_TOP, *top, ("revenue", money)),
            props=data,
            emit=(*lead, _p(money, Kind.UNITS), _CUR_RAW) if emit else None,
        ),
        go=go,
    )


def _plain_row(
    type_: str,
    *,
    once: bool,
    id_: str,
    user: str,
    params: tuple[Param, ...],
    data: tuple[str, ...],
    emit: bool,
) -> EventSpec:
    return EventSpec(
        type=type_,
        once=once,
        id=id_,
        user=user,
        data=data,
        money=None,
        publish=params,
        ga4=None,
        meta=None,
        collector=CollectorRule(top=(("distinct_id", user), _ORG_TOP), props=data, emit=params if emit else None),
    )


_ROWS: tuple[EventSpec, ...] = (
    _order_row("order.created", "begin_checkout", "InitiateCheckout", None),
    _order_row("order.completed", "purchase", "Purchase", (_p("order", Kind.STR),)),
    EventSpec(
        type="order.canceled",
        once=True,
        id="{order_id}",
        user="user_id",
        data=("order_id", "revenue", "currency", "reason"),
        money="revenue",
        publish=(
            _p("order_id", Kind.ID),
            _ORG_NAME,
            _p("user_id"),
            _p("total_cents", Kind.CENTS, "revenue"),
            _CUR,
            _p("reason", default=""),
        ),
        ga4=None,  # GA4 has no cancellation event; a cancelled (never captured) order is not a refund
        meta=None,
        collector=CollectorRule(
            top=(_USER, _ORG_TOP, ("order_id", "order_id")), props=("revenue", "currency", "reason")
        ),
        go=False,
    ),
    EventSpec(
        type="order.refunded",
        once=False,  # partial refunds repeat
        id="{order_id}",
        user="user_id",
        data=("order_id", "refunded_amount", "currency"),
        money="refunded_amount",
        publish=(
            _p("order_id", Kind.ID),
            _ORG_NAME,
            _p("user_id"),
            _p("refunded_cents", Kind.CENTS, "refunded_amount"),
            _CUR,
        ),
        ga4=GA4Rule("refund", value="refunded_amount", params=_TXN),
        meta=MetaRule(
            "Refund",
            (("external_id", "user_id"),),
            (("currency", "currency"), ("value", "refunded_amount"), ("order_id", "order_id")),
        ),
        collector=CollectorRule(
            top=(_USER, _ORG_TOP, ("order_id", "order_id")), props=("order_id", "refunded_amount", "currency")
        ),
    ),
    EventSpec(
        type="checkout.started",
        once=True,
        id="{session_id}",
        user=None,
        data=("session_id", "value", "currency"),
        money="value",
        publish=(_p("session_id", Kind.ID), _ORG_NAME, _p("total_cents", Kind.CENTS, "value"), _CUR),
        ga4=GA4Rule("begin_checkout", value="value"),
        meta=MetaRule("InitiateCheckout", None, (("currency", "currency"), ("value", "value"))),
        collector=CollectorRule(top=(_ORG_TOP,), props=("session_id", "value", "currency")),
    ),
    EventSpec(
        type="checkout.failed",
        once=False,
        id="{session_id}",
        user=None,
        data=("session_id", "value", "currency", "reason"),
        money="value",
        publish=(
            _p("session_id", Kind.ID),
            _ORG_NAME,
            _p("total_cents", Kind.CENTS, "value"),
            _CUR,
            _p("reason", default=""),
        ),
        ga4=None,  # no GA4 / Meta standard event for a failed checkout
        meta=None,
        collector=CollectorRule(top=(_ORG_TOP,), props=("session_id", "value", "currency", "reason")),
        go=False,
    ),
    EventSpec(
        type="payment.received",
        once=False,
        id="{payment_id}",
        user="user_id",
        data=("payment_id", "order_id", "amount", "currency"),
        money="amount",
        publish=(
            _p("payment_id", Kind.ID),
            _ORG_NAME,
            _p("order_id"),
            _p("user_id"),
            _p("amount_cents", Kind.CENTS, "amount"),
            _CUR,
        ),
        ga4=None,  # the purchase is reported once, by order.completed; mapping here would double-count
        meta=None,
        collector=CollectorRule(
            top=(_USER, _ORG_TOP, ("order_id", "order_id")), props=("payment_id", "amount", "currency")
        ),
        go=False,
    ),
    EventSpec(
        type="cart.updated",
        once=False,
        id="{cart_id}",
        user="user_id",
        data=("cart_id", "value", "currency"),
        money="value",
        publish=(
            _p("cart_id", Kind.ID),
            _ORG_NAME,
            _p("user_id"),
            _p("total_cents", Kind.CENTS, "value"),
            _CUR,
            _ITEMS,
        ),
        ga4=GA4Rule("add_to_cart", value="value", items="items"),
        meta=MetaRule("AddToCart", (("external_id", "user_id"),), (("currency", "currency"), ("value", "value"))),
        collector=CollectorRule(top=(_USER, _ORG_TOP), props=("cart_id", "value", "currency")),
        go=False,
    ),
    EventSpec(
        type="product.viewed",
        once=False,
        id="{product_id}",
        user="user_id",
        data=("product_id", "product_name", "price", "currency"),
        money="price",
        publish=(
            _p("product_id", Kind.ID),
            _ORG_NAME,
            _p("user_id"),
            _p("product_name"),
            _p("price_cents", Kind.CENTS, "price"),
            _CUR,
        ),
        ga4=GA4Rule("view_item", value="price", items="product"),
        meta=MetaRule(
            "ViewContent",
            (("external_id", "user_id"),),
            (
                ("currency", "currency"),
                ("value", "price"),
                ("content_ids", "[]product_id"),
                ("content_type", "=product"),
            ),
        ),
        collector=CollectorRule(
            top=(_USER, _ORG_TOP, ("product_id", "product_id")), props=("product_name", "price", "currency")
        ),
        go=False,
    ),
    _product_row("product.created", once=True),
    _product_row("product.updated", once=False),
    _plain_row(
        "referral.link_created",
        once=True,
        id_="{referral_code}",
        user="user_id",
        params=(_ORG, _p("user_id"), _p("referral_code", Kind.ID), _p("referral_url")),
        data=("referral_code", "referral_url"),
        emit=True,
    ),
    _plain_row(
        "referral.claimed",
        once=True,
        id_="{referee_id}",
        user="referee_id",
        params=(_ORG, _p("referrer_id"), _p("referee_id", Kind.ID), _p("referral_code")),
        data=("referrer_id", "referee_id", "referral_code"),
        emit=True,
    ),
    _amount_row(
        "referral.credit_granted",
        once=False,
        id_="credit-{user_id}-{unix_ms}",
        user="user_id",
        lead=(_ORG, _p("user_id", Kind.ID), _p("role")),
        data=("role", "amount", "currency"),
        money="amount",
        emit=True,
    ),
    _amount_row(
        "referral.commission_earned",
        once=True,
        id_="commission-{referrer_id}-{order_id}",
        user="referrer_id",
        lead=(_ORG, _p("referrer_id", Kind.ID), _p("order_id", Kind.ID)),
        data=("order_id", "commission", "currency"),
        money="commission",
        emit=True,
        top=(("order_id", "order_id"),),
    ),
    _amount_row(
        "referral.payout_sent",
        once=True,
        id_="{payout_id}",
        user="referrer_id",
        lead=(_ORG, _p("referrer_id", Kind.ID), _p("payout_id", Kind.ID)),
        data=("payout_id", "amount", "currency"),
        money="amount",
        emit=False,
        go=False,
    ),
    _plain_row(
        "referral.tier_upgraded",
        once=False,
        id_="tier-{user_id}-{unix_ms}",
        user="user_id",
        params=(
            _ORG,
            _p("user_id", Kind.ID),
            _p("previous_tier"),
            _p("new_tier"),
            _p("referral_count", Kind.COUNT),
        ),
        data=("previous_tier", "new_tier", "referral_count"),
        emit=True,
    ),
    _plain_row(
        "contributor.registered",
        once=True,
        id_="{user_id}",
        user="user_id",
        params=(_ORG, _p("user_id", Kind.ID), _p("github_username")),
        data=("github_username",),
        emit=True,
    ),
    _amount_row(
        "contributor.payout_calculated",
        once=True,
        id_="payout-calc-{user_id}-{period_month}",
        user="user_id",
        lead=(_ORG, _p("user_id", Kind.ID), _p("period_month", Kind.ID)),
        data=("period_month", "amount", "currency"),
        money="amount",
        emit=True,
    ),
    _amount_row(
        "contributor.payout_sent",
        once=True,
        id_="{payout_id}",
        user="user_id",
        lead=(_ORG, _p("user_id"), _p("payout_id", Kind.ID), _p("period_month")),
        data=("payout_id", "period_month", "amount", "currency"),
        money="amount",
        emit=True,
    ),
)

#: type → row, for the 20 catalog types.
CATALOG: Mapping[str, EventSpec] = {row.type: row for row in _ROWS}


def spec_for(event_type: str) -> EventSpec | None:
    """The catalog row of ``event_type`` (None for a custom type)."""
    return CATALOG.get(event_type)


# --------------------------------------------------------------------------- validation
#: The Hanzo collector's ClickHouse columns (facts §4): ``quantity`` UInt32, ``revenue`` Decimal64(4)
#: (18 digits, 4 of them decimals: |revenue| < 10**14; more decimals are rounded to 4).
COLLECTOR_MAX_QUANTITY = 2**32 - 1
COLLECTOR_MAX_REVENUE = 10.0**14
#: ``data`` keys that would collide with ids we set (the id template's ``{unix_ms}``, the collector's
#: ``properties.id`` / ``event_id`` / ``trace_id`` / ``span_id``): refused on every type.
RESERVED_DATA_KEYS = frozenset({"id", "event_id", "trace_id", "span_id", "unix_ms"})


@functools.lru_cache(maxsize=1)
def _iso4217_codes() -> frozenset[str]:
    from iso4217 import Currency  # a 12 kB table maintained from the ISO 4217 list (SIX); loaded on first use

    return frozenset(c.code for c in Currency)


_COMMON_CURRENCIES = frozenset({"USD", "EUR", "GBP", "JPY", "CAD", "AUD", "CHF", "CNY", "INR", "BRL", "MXN"})


def is_currency_code(code: str) -> bool:
    """True for an active ISO 4217 alphabetic code (upper case), e.g. ``"USD"``."""
    return code in _COMMON_CURRENCIES or code in _iso4217_codes()


def _currency(value: Any, where: str) -> str:
    """Upper-case a currency and check it against ISO 4217 ("" is returned as is)."""
    if not isinstance(value, str):
        raise EventValidationError(f"{where} must be a string ISO 4217 code, got {type(value).__name__}")
    if not value:
        return value
    code = value.strip().upper()
    if not is_currency_code(code):
        raise EventValidationError(f"{where} must be an ISO 4217 code such as 'USD', got {value!r:.40}")
    return code


def _money(value: Any, where: str) -> float | int:
    """A non-negative finite amount the collector can store (Decimal → float)."""
    if isinstance(value, Decimal):
        value = float(value) if value.is_finite() else math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EventValidationError(f"{where} must be a number, got {type(value).__name__} {value!r:.40}")
    if isinstance(value, int):
        if not 0 <= value < COLLECTOR_MAX_REVENUE:
            shown = value if value.bit_length() < 64 else f"an integer of {value.bit_length()} bits"
            raise EventValidationError(f"{where} must be between 0 and 10^14, got {shown}")
        return value
    if not math.isfinite(value):
        raise EventValidationError(f"{where} must be finite, got {value!r}")
    if not 0 <= value < COLLECTOR_MAX_REVENUE:
        raise EventValidationError(f"{where} must be between 0 and 10^14, got {value}")
    return value


def _check(param: Param, value: Any, type_: str) -> Any:
    kind = param.kind
    if kind in (Kind.ID, Kind.STR, Kind.CURRENCY, Kind.CURRENCY_RAW):
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise EventValidationError(f"{type_}: {param.name} must be a string, got {type(value).__name__}")
        check_text(value, f"{type_}: {param.name}")
        if kind is Kind.ID and not value.strip():
            raise EventValidationError(f"{type_}: {param.name} must not be empty")
        if kind in (Kind.CURRENCY, Kind.CURRENCY_RAW):
            value = _currency(value, f"{type_}: {param.name}")
            if kind is Kind.CURRENCY and not value:
                return "USD"
        return value
    if kind in (Kind.CENTS, Kind.COUNT):
        if isinstance(value, bool) or not isinstance(value, int):
            raise EventValidationError(
                f"{type_}: {param.name} must be an integer, got {type(value).__name__} {value!r:.40}"
            )
        if value < 0:
            raise EventValidationError(f"{type_}: {param.name} must not be negative")
        if kind is Kind.CENTS:
            if value.bit_length() > 64:
                raise EventValidationError(f"{type_}: {param.name} is over 10^14 units")
            return _money(value / 100.0, f"{type_}: {param.name}")
        if value > COLLECTOR_MAX_QUANTITY:
            raise EventValidationError(f"{type_}: {param.name} must be at most 2^32-1")
        return value
    if kind is Kind.UNITS:
        return float(_money(value, f"{type_}: {param.name}"))
    # Kind.ITEMS
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(isinstance(i, OrderItem) for i in value):
        raise EventValidationError(f"{type_}: {param.name} must be a list of OrderItem")
    out = [_check_item(item, f"{type_}: {param.name}[{n}]") for n, item in enumerate(value)]
    if sum(i.quantity for i in out) > COLLECTOR_MAX_QUANTITY:
        raise EventValidationError(f"{type_}: {param.name}: total quantity is over 2^32-1 (collector UInt32)")
    return out


def _check_item(item: OrderItem, where: str) -> OrderItem:
    q = item.quantity
    if isinstance(q, bool) or not isinstance(q, int) or not 0 <= q <= COLLECTOR_MAX_QUANTITY:
        raise EventValidationError(f"{where}: quantity must be an integer from 0 to 2^32-1, got {q!r:.40}")
    price = _money(item.price, f"{where}: price")
    for name in ("product_id", "product_name", "sku"):
        v = getattr(item, name)
        if not isinstance(v, str):
            raise EventValidationError(f"{where}: {name} must be a string, got {type(v).__name__}")
        check_text(v, f"{where}: {name}")
    if price is item.price and type(q) is int:
        return item
    return OrderItem(item.product_id, item.product_name, item.sku, int(q), float(price))


# --------------------------------------------------------------------------- field rules per type
#: The first token of every catalog type: a type in one of these namespaces must be in the catalog or
#: registered (``register_event_type`` / ``OTEL_COMMERCE_CUSTOM_TYPES``); other namespaces are free.
CATALOG_NAMESPACES = frozenset({"order", "checkout", "payment", "cart", "product", "referral", "contributor"})

_registered: set[str] = set()
_registered_lock = threading.Lock()
_env_loaded = False


def register_event_type(*event_types: str) -> None:
    """Allow custom types in a catalog namespace (``"order.shipped"``, ``"order.returned"``).

    They are delivered like any custom type (on ``commerce.<type>``, no GA4/Meta block, a fresh
    UUIDv7 ``event_id`` unless an ``idempotency_key`` is given). ``OTEL_COMMERCE_CUSTOM_TYPES``
    (comma-separated) registers types from the environment. Raises ``EventValidationError`` for a
    name that cannot be a subject token.
    """
    from ._subjects import subject_for

    for t in event_types:
        subject_for(t)
        with _registered_lock:
            _registered.add(t[len("commerce.") :] if t.startswith("commerce.") else t)


def _load_env_types() -> None:
    global _env_loaded
    raw = os.environ.get("OTEL_COMMERCE_CUSTOM_TYPES", "")
    _env_loaded = True
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if names:
        register_event_type(*names)


def check_catalog_type(event_type: str) -> None:
    """Refuse a type in a catalog namespace that is neither in the catalog nor registered.

    The message suggests the closest known type (``order.complete`` → did you mean
    ``order.completed``?). Cheap for the common case (a catalog type or a free namespace).
    """
    if event_type in CATALOG or event_type in _registered:
        return
    namespace = event_type.partition(".")[0]
    if namespace not in CATALOG_NAMESPACES:
        return
    if not _env_loaded:
        _load_env_types()
        if event_type in _registered:
            return
    known = sorted({*CATALOG, *_registered})
    close = difflib.get_close_matches(event_type, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise EventValidationError(
        f"unknown event type {event_type!r} in the catalog namespace {namespace!r}{hint} "
        "(register a custom type with otel_commerce.register_event_type() or OTEL_COMMERCE_CUSTOM_TYPES)"
    )




@functools.cache
def _field_kinds(event_type: str) -> tuple[tuple[str, Kind, bool], ...]:
    """``(field, kind, required)`` for each ``data`` field of a catalog type (from its Publisher params)."""
    spec = CATALOG[event_type]
    kinds = {p.field: p.kind for p in spec.publish}
    out = []
    for f in spec.data:
        kind = kinds.get(f, Kind.STR)
        if kind is Kind.CENTS:
            kind = Kind.UNITS  # data holds currency units
        required = kind is Kind.ID  # the entity's ids; money and counts are checked when present
        out.append((f, kind, required))
    return tuple(out)


def field_kinds(event_type: str) -> tuple[tuple[str, Kind, bool], ...]:
    """``(field, kind, required)`` for each ``data`` field of a catalog type (what :func:`check_fields` checks)."""
    return _field_kinds(event_type)


def required_fields(event_type: str) -> tuple[str, ...]:
    """The ``data`` fields a catalog type must have (its entity ids, e.g. ``order_id``)."""
    return tuple(f for f, _, req in _field_kinds(event_type) if req)


def check_fields(
    spec: EventSpec,
    data: dict[str, Any],
    *,
    required: bool = True,
    in_place: bool = False,
    kinds: tuple[tuple[str, Kind, bool], ...] | None = None,
) -> dict[str, Any]:
    """Check ``data`` against the documented fields of ``spec`` (returns it, or a fixed copy).

    Required fields present (``required=True``); ids non-empty strings; text fields strings; money
    a number (not a string), finite, from 0 to 10^14 (the collector's Decimal64(4)); counts integers
    from 0 to 2^32-1; ``currency`` upper-cased, then checked against ISO 4217. Extra keys are free.
    ``in_place``: fix ``data`` itself (the caller owns it: a frozen copy) instead of copying it.
    ``kinds``: ``field_kinds(spec.type)``, when the caller holds it.
    """
    out = data
    type_ = spec.type
    for f, kind, req in kinds if kinds is not None else _field_kinds(type_):
        value: Any = data.get(f)
        t = type(value)
        # the common valid cases first (enum members bound to module globals: a Kind.X lookup costs
        # more than the check); the error path (and its "where" text) is built only on error
        if t is str:
            if kind is _STR or (kind is _ID and value and not value.isspace()):
                continue
            if (kind is _CURRENCY or kind is _CURRENCY_RAW) and value in _COMMON_CURRENCIES:
                continue
        elif t is float and kind is _UNITS and 0.0 <= value < COLLECTOR_MAX_REVENUE:  # NaN fails too
            continue
        if value is None or (value == "" and kind is not _CURRENCY):
            if req and required:
                raise EventValidationError(
                    f"{type_}: data needs field {f!r} (required without id=: {', '.join(required_fields(type_))})"
                )
            continue
        new = value
        if kind is _UNITS:
            if not (t is float and 0.0 <= value < COLLECTOR_MAX_REVENUE):  # NaN fails the comparison too
                new = _money(value, f"{type_}: data.{f}")
        elif kind is _COUNT:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= COLLECTOR_MAX_QUANTITY:
                raise EventValidationError(f"{type_}: data.{f} must be an integer from 0 to 2^32-1, got {value!r:.40}")
        elif kind is _CURRENCY or kind is _CURRENCY_RAW:
            if not (t is str and value in _COMMON_CURRENCIES):
                new = _currency(value, f"{type_}: data.{f}")
        elif t is not str:
            raise EventValidationError(f"{type_}: data.{f} must be a string, got {t.__name__}")
        elif kind is _ID and not value.strip():
            raise EventValidationError(f"{type_}: data.{f} must not be empty")
        if new is not value:
            if out is data and not in_place:
                out = dict(data)
            out[f] = new
    return out


_STR, _ID, _UNITS, _COUNT = Kind.STR, Kind.ID, Kind.UNITS, Kind.COUNT
_CURRENCY, _CURRENCY_RAW = Kind.CURRENCY, Kind.CURRENCY_RAW


def check_reserved(data: Mapping[str, Any], type_: str) -> None:
    """Refuse ``data`` keys in :data:`RESERVED_DATA_KEYS` (they would be overwritten on the way)."""
    found: set[str]
    try:
        if RESERVED_DATA_KEYS.isdisjoint(data):  # the common case
            return
        found = set(RESERVED_DATA_KEYS.intersection(data))
    except TypeError:  # an unhashable key (a custom Mapping's): the walk refuses it, naming it; the others here
        found = set()
        for k in data:
            with contextlib.suppress(TypeError):
                if k in RESERVED_DATA_KEYS:
                    found.add(k)
    if found:
        key = sorted(found)[0]
        hint = " (pass id= instead)" if key == "id" else ""
        raise EventValidationError(f"{type_}: data key {key!r} is reserved for an id otel-commerce sets{hint}")


def _bind(params: Sequence[Param], args: Mapping[str, Any], type_: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for param in params:
        value = args.get(param.name, param.default)
        if value is _REQUIRED:
            raise EventValidationError(f"{type_}: missing argument {param.name!r}")
        fields[param.field] = _check(param, value, type_)
    return fields


def fields_from_order(order: Order) -> dict[str, Any]:
    """The canonical fields of an ``Order`` (float units, as Go's Order)."""
    if not isinstance(order, Order):
        raise EventValidationError(f"order must be an Order, got {type(order).__name__}")
    if not isinstance(order.id, str) or not order.id.strip():
        raise EventValidationError("order.id must be a non-empty string")
    for name in ("id", "user_id", "email", "currency", "status", "org_id"):
        v = getattr(order, name)
        if v is not None and not isinstance(v, str):
            raise EventValidationError(f"order.{name} must be a string, got {type(v).__name__}")
        check_text(v or "", f"order.{name}")
    currency = _currency(order.currency or "", "order.currency")
    total = _check(Param("order.total", "revenue", Kind.UNITS), order.total, "order")
    items = _check(Param("order.items", "items", Kind.ITEMS), order.items, "order")
    return {
        "order_id": order.id,
        "organization_id": order.org_id,
        "user_id": order.user_id,
        "email": order.email,
        "revenue": total,
        "currency": currency,
        "items": items,
        "status": order.status,
        "quantity": sum(i.quantity for i in items),
        "item_count": len(items),
    }


# --------------------------------------------------------------------------- envelope building
def entity_id(spec: EventSpec, fields: Mapping[str, Any], timestamp: datetime) -> str:
    """The entity id of an event of ``spec`` (its ``id`` template filled from ``fields``; ``unix_ms`` is
    ``timestamp`` in Unix milliseconds, naive = UTC). Raises ``EventValidationError`` naming a missing field.
    """
    unix_ms = to_unix_ms(timestamp)  # naive = UTC, never local time
    try:  # our unix_ms wins over a field of that name (a data key "unix_ms" is refused anyway)
        out = spec.id.format_map({**fields, "unix_ms": unix_ms})
    except KeyError as exc:
        raise EventValidationError(f"{spec.type}: the id needs field {exc.args[0]!r}") from exc
    except (ValueError, IndexError, AttributeError, TypeError) as exc:
        raise EventValidationError(f"{spec.type}: cannot make the id from {spec.id!r}: {exc}") from exc
    return check_text(out, f"{spec.type}: id")


def _text_size(s: str) -> int:
    """An upper bound of the bytes ``s`` adds to an envelope where it appears (body, GA4 items) and in the
    collector's JSON string (encoded twice there).

    Plain printable ASCII without ``"`` or ``\\`` (the usual case: one C-level check) costs a byte per
    character in each of the three places; anything else is measured: its exact JSON-encoded length
    (UTF-8: 4 bytes for an emoji; escapes: up to 6 bytes for a control character), counted once for the
    body, once for GA4 and twice for the doubly-encoded collector string (escaping again at most doubles it).
    """
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return 3 * len(s)
    try:
        return 4 * (len(orjson.dumps(s)) - 2)
    except orjson.JSONEncodeError:  # a lone surrogate: refused by the checks; bound it anyway
        return 24 * len(s)


def items_size(items: Sequence[OrderItem]) -> int:
    """An upper bound of the bytes ``items`` add to an envelope (body, GA4 items, collector JSON string)."""
    return sum(_text_size(i.product_id) + _text_size(i.product_name) + _text_size(i.sku) + 240 for i in items)


ENVELOPE_OVERHEAD = 2048  # ids, timestamp, trace ids, the GA4/Meta blocks' fixed keys


def check_data(
    event_type: str,
    data: Mapping[str, Any],
    *,
    id: str | None = None,
    max_bytes: int | None = DEFAULT_MAX_EVENT_BYTES,
    extra_bytes: int = 0,
    freeze: bool = False,
) -> dict[str, Any]:
    """The one ``data`` rule of every API: encodable by every hop, and the catalog's fields.

    ``freeze``: return a copy sharing no dict or list with ``data`` (:func:`freeze_data`), made in the
    same pass as the checks (``record_event``: later edits of the caller's data change nothing).

    Reserved keys refused, :func:`clean_data` (int64, finite, UTF-8, depth, JSON types, size bound;
    ``Decimal`` → float), then for a catalog type :func:`check_fields` — its required fields (the
    entity ids) only when no explicit ``id`` is given. Returns the data to record (``data`` itself
    when nothing changed). Raises ``EventValidationError``.
    """
    if not isinstance(data, Mapping):
        raise EventValidationError(f"{event_type}: data must be a mapping, got {type(data).__name__}")
    check_reserved(data, event_type)
    walk = freeze_data if freeze else clean_data
    out = walk(data, max_bytes=max_bytes, extra_bytes=extra_bytes + ENVELOPE_OVERHEAD)
    spec = CATALOG.get(event_type)
    if spec is None:
        return out
    return check_fields(spec, out, required=id is None, in_place=freeze)


def check_ids(
    event_type: str, id: object, organization_id: object, user_id: object, session_id: object, idempotency_key: object
) -> None:
    """The envelope's id fields (:func:`new_event`'s rules): ``id`` / ``organization_id`` non-empty strings,
    ``user_id`` / ``session_id`` strings, ``idempotency_key`` None or a non-empty string; no lone surrogates."""
    # the common case first: plain ASCII strings (isspace: all whitespace, like an empty strip())
    if (
        type(id) is str
        and type(organization_id) is str
        and type(user_id) is str
        and type(session_id) is str
        and idempotency_key is None
        and id.isascii()
        and organization_id.isascii()
        and user_id.isascii()
        and session_id.isascii()
        and id
        and organization_id
        and not id.isspace()
        and not organization_id.isspace()
    ):
        return
    for name, value in (("id", id), ("organization_id", organization_id)):
        if not isinstance(value, str) or not value.strip():
            raise EventValidationError(f"{event_type}: {name} must be a non-empty string, got {value!r:.60}")
        check_text(value, f"{event_type}: {name}")
    for name, value in (("user_id", user_id), ("session_id", session_id)):
        if not isinstance(value, str):
            raise EventValidationError(f"{event_type}: {name} must be a string, got {type(value).__name__}")
        check_text(value, f"{event_type}: {name}")
    if idempotency_key is not None:
        if not isinstance(idempotency_key, str) or not idempotency_key:
            raise EventValidationError("idempotency_key must be a non-empty string")
        check_text(idempotency_key, "idempotency_key")


def new_event(
    event_type: str,
    *,
    id: str,
    organization_id: str,
    user_id: str = "",
    session_id: str = "",
    data: dict[str, Any] | None = None,
    timestamp: datetime | None = None,
    idempotency_key: str | None = None,
    event_id: str | None = None,
    data_checked: bool = False,
    max_bytes: int | None = DEFAULT_MAX_EVENT_BYTES,
) -> CommerceEvent:
    """A validated envelope without GA4/Meta blocks, its ``event_id`` fixed by the type's policy.

    ``data`` goes through :func:`check_data` unless ``data_checked`` (the caller did it already).
    """
    subject_for(event_type)  # validates the type's syntax
    check_catalog_type(event_type)
    check_ids(event_type, id, organization_id, user_id, session_id, idempotency_key)
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise EventValidationError(f"{event_type}: data must be a dict, got {type(data).__name__}")
    if not data_checked:
        data = check_data(event_type, data, id=id, max_bytes=max_bytes)
    ts = timestamp or datetime.now(timezone.utc)
    spec = CATALOG.get(event_type)
    once = spec.once if spec is not None else False
    return CommerceEvent(
        id=id,
        type=event_type,
        timestamp=ts,
        organization_id=organization_id,
        user_id=user_id,
        session_id=session_id,
        data=data,
        event_id=event_id
        or event_id_for(event_type, organization_id, id, once=once, idempotency_key=idempotency_key),
    )


def check_envelope(event: CommerceEvent, *, max_bytes: int | None = DEFAULT_MAX_EVENT_BYTES) -> None:
    """Check a caller-built envelope (``Publisher.publish``) with the rules of :func:`new_event`.

    Converts in place where the rules convert (``Decimal`` → float, currency upper-cased); also checks
    the GA4 ``parameters`` / items and the Meta ``custom_data`` blocks when present.
    """
    t = event.type
    if not isinstance(t, str):
        raise EventValidationError(f"type must be a string, got {type(t).__name__}")
    subject_for(t)
    check_catalog_type(t)
    for name in ("id", "organization_id", "user_id", "session_id", "event_id"):
        value = getattr(event, name)
        if not isinstance(value, str):
            raise EventValidationError(f"{t}: {name} must be a string, got {type(value).__name__}")
        check_text(value, f"{t}: {name}")
    if not event.id.strip():
        raise EventValidationError(f"{t}: id must be a non-empty string")
    if not isinstance(event.timestamp, datetime):
        raise EventValidationError(f"{t}: timestamp must be a datetime")
    data = {} if event.data is None else event.data
    event.data = check_data(t, data, id=event.id, max_bytes=max_bytes)
    if event.ga4 is not None:
        ga4 = event.ga4
        if ga4.parameters is not None:
            ga4.parameters = clean_data(ga4.parameters, "ga4.parameters", max_bytes=None)
        ga4.value = float(_money(ga4.value, f"{t}: ga4.value"))
        ga4.currency = _currency(ga4.currency, f"{t}: ga4.currency")
        for n, item in enumerate(ga4.items):
            q = item.quantity
            if isinstance(q, bool) or not isinstance(q, int) or not INT64_MIN <= q <= INT64_MAX:
                raise EventValidationError(f"{t}: ga4.items[{n}].quantity must be a 64-bit integer, got {q!r:.40}")
            item.price = float(_money(item.price, f"{t}: ga4.items[{n}].price"))
    if event.facebook_capi is not None:
        capi = event.facebook_capi
        if capi.custom_data is not None:
            capi.custom_data = clean_data(capi.custom_data, "facebook_capi.custom_data", max_bytes=None)
        et = capi.event_time
        if isinstance(et, bool) or not isinstance(et, int) or not INT64_MIN <= et <= INT64_MAX:
            raise EventValidationError(f"{t}: facebook_capi.event_time must be a 64-bit integer, got {et!r:.40}")


def event_from_args(
    event_type: str, args: Mapping[str, Any], *, idempotency_key: str | None = None
) -> tuple[CommerceEvent, list[OrderItem]]:
    """Build the envelope of a typed Publisher helper from its arguments (Go semantics)."""
    spec = CATALOG[event_type]
    fields = _bind(spec.publish, args, event_type)
    ts = datetime.now(timezone.utc)
    event = new_event(
        event_type,
        id=entity_id(spec, fields, ts),
        organization_id=fields["organization_id"],
        user_id=fields.get(spec.user, "") if spec.user else "",
        data={k: fields[k] for k in spec.data},
        timestamp=ts,
        idempotency_key=idempotency_key,
    )
    items: list[OrderItem] = fields.get("items", [])
    return event, items


# --------------------------------------------------------------------------- GA4 / Meta mapping
def _ga4_items(rule: GA4Rule, fields: Mapping[str, Any], currency: str) -> list[GA4Item]:
    if rule.items == "items":
        return [
            GA4Item(
                item_id=i.product_id,
                item_name=i.product_name,
                price=i.price,
                quantity=i.quantity,
                currency=currency,
            )
            for i in fields.get("items") or ()
        ]
    if rule.items == "product" and fields.get("product_id"):
        return [
            GA4Item(
                item_id=str(fields["product_id"]),
                item_name=str(fields.get("product_name", "")),
                price=float(fields.get("price") or 0.0),
                quantity=1,
                currency=currency,
            )
        ]
    return []


def _custom_value(source: str, fields: Mapping[str, Any]) -> Any:
    if source.startswith("="):
        return source[1:]
    if source.startswith("[]"):
        return [fields.get(source[2:], "")]
    return fields.get(source, "")


def apply_marketing(event: CommerceEvent, items: Sequence[OrderItem] = ()) -> CommerceEvent:
    """Fill ``ga4`` and ``facebook_capi`` from the catalog (no-op for custom types). Returns ``event``."""
    spec = CATALOG.get(event.type)
    if spec is None:
        return event
    fields: dict[str, Any] = {**event.data, "user_id": event.user_id, "items": items}
    currency = str(fields.get("currency") or "")
    if spec.ga4 is not None and event.ga4 is None:
        rule = spec.ga4
        value = fields.get(rule.value) if rule.value else None
        params = {k: fields[f] for k, f in rule.params if fields.get(f) not in (None, "")}
        event.ga4 = GA4EcommerceEvent(
            event_name=rule.event,
            currency=currency,
            value=float(value) if isinstance(value, (int, float)) else 0.0,
            items=_ga4_items(rule, fields, currency),
            parameters=params or None,
        )
    if spec.meta is not None and event.facebook_capi is None:
        meta = spec.meta
        user_data = None
        if meta.user_data is not None:
            ud = {key: str(fields.get(f) or "") for key, f in meta.user_data}
            user_data = FacebookUserData(email=capi_hash("em", ud.get("em", "")), external_id=ud.get("external_id", ""))
        custom = {k: _custom_value(src, fields) for k, src in meta.custom}
        event.facebook_capi = FacebookCAPIEvent(
            event_name=meta.event,
            event_time=to_unix_seconds(event.timestamp),  # naive = UTC (not the local zone)
            action_source="website",
            user_data=user_data,
            custom_data=custom or None,
        )
    return event


# --------------------------------------------------------------------------- collector payloads
def _collector_payload(
    event_name: str, rule: CollectorRule | None, fields: Mapping[str, Any], props: dict[str, Any]
) -> dict[str, Any]:
    payload: dict[str, Any] = {"event": event_name}
    for key, source in rule.top if rule else (_USER, _ORG_TOP):
        value = fields.get(source)
        if value is not None and value != "":
            payload[key] = value
    payload["properties"] = props
    return _collector_columns(payload)


def _collector_columns(payload: dict[str, Any]) -> dict[str, Any]:
    """Fit the collector's columns: ``revenue`` Decimal64(4) is rounded to 4 decimals (documented)."""
    revenue = payload.get("revenue")
    if isinstance(revenue, float):
        payload["revenue"] = round(revenue, 4)
    return payload


_GO_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def _go_number(value: Any) -> Any:
    """Go prints an integral float64 without a fraction (``10``, not ``10.0``)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    return value


def _go_json(items: list[dict[str, Any]]) -> str:
    """The bytes Go's ``json.Marshal`` gives for a list of maps: sorted keys, HTML-safe escapes."""
    text = orjson.dumps([{k: _go_number(v) for k, v in i.items()} for i in items], option=orjson.OPT_SORT_KEYS).decode()
    for raw, escaped in _GO_ESCAPES:
        text = text.replace(raw, escaped)
    return text


def collector_from_args(event_type: str, args: Mapping[str, Any]) -> tuple[dict[str, Any], str, str]:
    """The exact Go payload of a typed Client emitter, the event's id and its organization (for its event_id)."""
    spec = CATALOG[event_type]
    rule = spec.collector
    assert rule.emit is not None
    if rule.emit[0].name == "order":
        fields = fields_from_order(args["order"])
        fields["items"] = _go_json([i.to_dict() for i in fields["items"]])
    else:
        fields = _bind(rule.emit, args, event_type)
    payload: dict[str, Any] = {"event": spec.collector_event}
    for key, source in rule.top:
        if source in fields:
            payload[key] = fields[source]
    payload["properties"] = {k: fields[k] for k in rule.props}
    org = fields.get("organization_id")
    return (
        _collector_columns(payload),
        entity_id(spec, fields, datetime.now(timezone.utc)),
        org if isinstance(org, str) else "",
    )


def collector_from_event(event: CommerceEvent, items: Sequence[OrderItem] = ()) -> dict[str, Any]:
    """A collector payload (``POST /event`` shape) for an envelope, with ids in ``properties``.

    With the order's ``items`` the Go client's order fields are added too: top-level ``quantity``,
    ``properties.items`` (Go's JSON string) and ``properties.item_count``.
    """
    spec = CATALOG.get(event.type)
    fields: dict[str, Any] = {
        **event.data,
        "user_id": event.user_id,
        "organization_id": event.organization_id,
    }
    props: dict[str, Any] = dict(event.data)
    if items:
        fields["quantity"] = sum(i.quantity for i in items)
        props["items"] = _go_json([i.to_dict() for i in items])
        props["item_count"] = len(items)
    props["id"] = event.id
    if event.event_id:
        props["event_id"] = event.event_id
    if event.trace_id:
        props["trace_id"] = event.trace_id
        props["span_id"] = event.span_id
    name = spec.collector_event if spec else event.type.replace(".", "_")
    payload = _collector_payload(name, spec.collector if spec else None, fields, props)
    if "distinct_id" not in payload and event.user_id:
        payload["distinct_id"] = event.user_id
    if event.session_id:
        payload["session_id"] = event.session_id
    payload["timestamp"] = format_timestamp(event.timestamp)
    return payload
