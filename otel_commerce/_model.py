"""The wire model: ``CommerceEvent`` and its GA4 / Meta CAPI parts, ``Order`` and friends.

JSON keys, presence rules and types follow the Go struct tags (facts §1): ``omitempty`` fields are
left out when empty, ``data`` is always present, ``quantity`` / ``event_time`` stay integers and
timestamps are RFC 3339 UTC with ``Z`` and trimmed fractional seconds (Go ``RFC3339Nano``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson

from ._errors import EventValidationError

__all__ = [
    "CommerceEvent",
    "FacebookCAPIEvent",
    "FacebookUserData",
    "GA4EcommerceEvent",
    "GA4Item",
    "LineItemInfo",
    "Order",
    "OrderItem",
    "check_json_value",
    "format_timestamp",
    "parse_timestamp",
    "to_order_items",
]

JSONDict = dict[str, Any]


# --------------------------------------------------------------------------- timestamps
def format_timestamp(ts: datetime) -> str:
    """RFC 3339 in UTC with ``Z`` and trailing fractional zeros trimmed (Go ``RFC3339Nano``)."""
    out = ts.isoformat()  # C-fast: "YYYY-MM-DDTHH:MM:SS[.ffffff][+HH:MM]"
    if out.endswith("+00:00"):
        out = out[:-6]
    elif ts.tzinfo is not None:
        out = ts.astimezone(timezone.utc).replace(tzinfo=None).isoformat()
    if ts.microsecond:
        out = out.rstrip("0")
    return out + "Z"


def parse_timestamp(value: str) -> datetime:
    """Parse RFC 3339 (nanoseconds are truncated to microseconds); the result is aware, in UTC."""
    if not isinstance(value, str) or len(value) < 20:
        raise EventValidationError(f"invalid RFC 3339 timestamp: {value!r}")
    s = value.strip()
    if s[-1] in "Zz":
        s = s[:-1] + "+00:00"
    # Python < 3.11 accepts at most 6 fractional digits: truncate extra precision.
    if "." in s:
        head, _, rest = s.partition(".")
        digits = ""
        i = 0
        while i < len(rest) and rest[i].isdigit():
            i += 1
        digits, tail = rest[:i], rest[i:]
        s = f"{head}.{digits[:6].ljust(6, '0')}{tail}" if digits else head + tail
    try:
        ts = datetime.fromisoformat(s)
    except ValueError as exc:
        raise EventValidationError(f"invalid RFC 3339 timestamp: {value!r}") from exc
    if ts.tzinfo is None:
        raise EventValidationError(f"timestamp without a UTC offset: {value!r}")
    try:
        return ts.astimezone(timezone.utc)
    except (OverflowError, ValueError) as exc:  # 9999-12-31T23:59:59-14:00 is past year 9999 in UTC
        raise EventValidationError(f"timestamp out of range in UTC: {value!r}") from exc


# --------------------------------------------------------------------------- validation helpers
def check_json_value(value: Any, path: str = "data") -> None:
    """Raise ``EventValidationError`` unless ``value`` is JSON-encodable with finite numbers."""
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EventValidationError(f"{path} is {value!r}: amounts must be finite numbers")
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise EventValidationError(f"{path} has a non-string key {k!r}")
            check_json_value(v, f"{path}.{k}")
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_json_value(v, f"{path}[{i}]")
        return
    raise EventValidationError(f"{path} is not JSON-serialisable: {type(value).__name__} {value!r:.80}")


def _str(d: Mapping[str, Any], key: str) -> str:
    v = d.get(key, "")
    if v is None:
        return ""
    if not isinstance(v, str):
        raise EventValidationError(f"{key} must be a string, got {type(v).__name__}")
    return v


def _float(d: Mapping[str, Any], key: str) -> float:
    v = d.get(key, 0.0)
    if v is None:
        return 0.0
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise EventValidationError(f"{key} must be a number, got {type(v).__name__}")
    return float(v)


def _int(d: Mapping[str, Any], key: str) -> int:
    v = d.get(key, 0)
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            return int(v)
        raise EventValidationError(f"{key} must be an integer, got {type(v).__name__}")
    return v


def _dict_or_none(d: Mapping[str, Any], key: str) -> JSONDict | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, Mapping):
        raise EventValidationError(f"{key} must be an object, got {type(v).__name__}")
    return dict(v)


# --------------------------------------------------------------------------- GA4
@dataclass(slots=True)
class GA4Item:
    """One item in GA4 Enhanced Ecommerce format (price in currency units)."""

    item_id: str
    item_name: str
    price: float = 0.0
    quantity: int = 0
    item_brand: str = ""
    item_category: str = ""
    currency: str = ""

    def to_dict(self) -> JSONDict:
        out: JSONDict = {"item_id": self.item_id, "item_name": self.item_name}
        if self.item_brand:
            out["item_brand"] = self.item_brand
        if self.item_category:
            out["item_category"] = self.item_category
        out["price"] = float(self.price)
        out["quantity"] = int(self.quantity)
        if self.currency:
            out["currency"] = self.currency
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GA4Item:
        return cls(
            item_id=_str(d, "item_id"),
            item_name=_str(d, "item_name"),
            price=_float(d, "price"),
            quantity=_int(d, "quantity"),
            item_brand=_str(d, "item_brand"),
            item_category=_str(d, "item_category"),
            currency=_str(d, "currency"),
        )


@dataclass(slots=True)
class GA4EcommerceEvent:
    """GA4 Enhanced Ecommerce block of the envelope."""

    event_name: str
    currency: str = ""
    value: float = 0.0
    items: list[GA4Item] = field(default_factory=list)
    parameters: JSONDict | None = None

    def to_dict(self) -> JSONDict:
        out: JSONDict = {"event_name": self.event_name}
        if self.currency:
            out["currency"] = self.currency
        if self.value:
            out["value"] = float(self.value)
        if self.items:
            out["items"] = [i.to_dict() for i in self.items]
        if self.parameters:
            out["parameters"] = self.parameters
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GA4EcommerceEvent:
        items = d.get("items") or []
        if not isinstance(items, list):
            raise EventValidationError("ga4.items must be a list")
        return cls(
            event_name=_str(d, "event_name"),
            currency=_str(d, "currency"),
            value=_float(d, "value"),
            items=[GA4Item.from_dict(i) for i in items],
            parameters=_dict_or_none(d, "parameters"),
        )


# --------------------------------------------------------------------------- Meta CAPI
_USER_DATA_KEYS = {
    "em": "email",
    "ph": "phone",
    "external_id": "external_id",
    "client_ip_address": "client_ip_address",
    "client_user_agent": "client_user_agent",
    "fbc": "fbc",
    "fbp": "fbp",
}


@dataclass(slots=True)
class FacebookUserData:
    """CAPI user matching data; ``email`` (``em``) and ``phone`` (``ph``) are SHA-256 hex digests."""

    email: str = ""
    phone: str = ""
    external_id: str = ""
    client_ip_address: str = ""
    client_user_agent: str = ""
    fbc: str = ""
    fbp: str = ""

    def to_dict(self) -> JSONDict:
        return {k: getattr(self, attr) for k, attr in _USER_DATA_KEYS.items() if getattr(self, attr)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FacebookUserData:
        return cls(**{attr: _str(d, k) for k, attr in _USER_DATA_KEYS.items()})


@dataclass(slots=True)
class FacebookCAPIEvent:
    """Meta Conversions API block of the envelope (``event_time`` in unix seconds)."""

    event_name: str
    event_time: int
    action_source: str = "website"
    user_data: FacebookUserData | None = None
    custom_data: JSONDict | None = None

    def to_dict(self) -> JSONDict:
        out: JSONDict = {
            "event_name": self.event_name,
            "event_time": int(self.event_time),
            "action_source": self.action_source,
        }
        if self.user_data is not None:
            out["user_data"] = self.user_data.to_dict()
        if self.custom_data:
            out["custom_data"] = self.custom_data
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FacebookCAPIEvent:
        ud = d.get("user_data")
        if ud is not None and not isinstance(ud, Mapping):
            raise EventValidationError("facebook_capi.user_data must be an object")
        return cls(
            event_name=_str(d, "event_name"),
            event_time=_int(d, "event_time"),
            action_source=_str(d, "action_source"),
            user_data=FacebookUserData.from_dict(ud) if ud is not None else None,
            custom_data=_dict_or_none(d, "custom_data"),
        )


# --------------------------------------------------------------------------- envelope
@dataclass(slots=True)
class CommerceEvent:
    """The standard envelope of every commerce event (Go ``CommerceEvent`` + additive ids).

    ``type`` has no ``commerce.`` prefix (``"order.completed"``); the subject is ``commerce.<type>``.
    ``event_id`` (UUID), ``trace_id`` (32 hex) and ``span_id`` (16 hex) are additions Go consumers
    ignore; they are omitted from the JSON when empty.
    """

    id: str
    type: str
    timestamp: datetime
    organization_id: str
    user_id: str = ""
    session_id: str = ""
    data: JSONDict = field(default_factory=dict)
    ga4: GA4EcommerceEvent | None = None
    facebook_capi: FacebookCAPIEvent | None = None
    event_id: str = ""
    trace_id: str = ""
    span_id: str = ""

    @property
    def subject(self) -> str:
        """The JetStream subject of this event: ``commerce.<type>``."""
        return "commerce." + self.type

    def to_dict(self) -> JSONDict:
        """The JSON object Go consumers read (keys and omitempty rules of the Go struct)."""
        out: JSONDict = {
            "id": self.id,
            "type": self.type,
            "timestamp": format_timestamp(self.timestamp),
            "organization_id": self.organization_id,
        }
        if self.user_id:
            out["user_id"] = self.user_id
        if self.session_id:
            out["session_id"] = self.session_id
        out["data"] = self.data if self.data is not None else {}
        if self.ga4 is not None:
            out["ga4"] = self.ga4.to_dict()
        if self.facebook_capi is not None:
            out["facebook_capi"] = self.facebook_capi.to_dict()
        if self.event_id:
            out["event_id"] = self.event_id
        if self.trace_id:
            out["trace_id"] = self.trace_id
        if self.span_id:
            out["span_id"] = self.span_id
        return out

    def to_json(self) -> bytes:
        """Encode with orjson (raises ``EventValidationError`` on non-serialisable data)."""
        try:
            return orjson.dumps(self.to_dict())
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise EventValidationError(f"event {self.type!r} is not JSON-serialisable: {exc}") from exc

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CommerceEvent:
        """Decode an envelope (from Go or from us); unknown keys are ignored, like Go does."""
        if not isinstance(d, Mapping):
            raise EventValidationError(f"an envelope must be a JSON object, got {type(d).__name__}")
        data = d.get("data")
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise EventValidationError("data must be an object")
        ga4 = d.get("ga4")
        capi = d.get("facebook_capi")
        return cls(
            id=_str(d, "id"),
            type=_str(d, "type"),
            timestamp=parse_timestamp(_str(d, "timestamp")),
            organization_id=_str(d, "organization_id"),
            user_id=_str(d, "user_id"),
            session_id=_str(d, "session_id"),
            data=dict(data),
            ga4=GA4EcommerceEvent.from_dict(ga4) if isinstance(ga4, Mapping) else None,
            facebook_capi=FacebookCAPIEvent.from_dict(capi) if isinstance(capi, Mapping) else None,
            event_id=_str(d, "event_id"),
            trace_id=_str(d, "trace_id"),
            span_id=_str(d, "span_id"),
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> CommerceEvent:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise EventValidationError(f"envelope is not valid JSON: {exc}") from exc
        return cls.from_dict(obj)


# --------------------------------------------------------------------------- orders
@dataclass(slots=True)
class OrderItem:
    """An item of an order; ``price`` in currency units (float), as in Go."""

    product_id: str
    product_name: str = ""
    sku: str = ""
    quantity: int = 0
    price: float = 0.0

    def to_dict(self) -> JSONDict:
        return {
            "product_id": self.product_id,
            "product_name": self.product_name,
            "sku": self.sku,
            "quantity": int(self.quantity),
            "price": float(self.price),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OrderItem:
        return cls(
            product_id=_str(d, "product_id"),
            product_name=_str(d, "product_name"),
            sku=_str(d, "sku"),
            quantity=_int(d, "quantity"),
            price=_float(d, "price"),
        )


@dataclass(slots=True)
class Order:
    """A commerce order for event emission; ``total`` in currency units (float), as in Go."""

    id: str
    user_id: str = ""
    email: str = ""
    total: float = 0.0
    currency: str = ""
    items: list[OrderItem] = field(default_factory=list)
    status: str = ""
    org_id: str = ""


@dataclass(slots=True)
class LineItemInfo:
    """Minimal line-item data with an integer price in cents (Go ``LineItemInfo``)."""

    product_id: str
    product_name: str = ""
    sku: str = ""
    quantity: int = 0
    price_cents: int = 0


def to_order_items(items: Iterable[LineItemInfo] | None) -> list[OrderItem]:
    """Convert line items (cents) to order items (units): ``price = price_cents / 100``."""
    return [
        OrderItem(
            product_id=i.product_id,
            product_name=i.product_name,
            sku=i.sku,
            quantity=i.quantity,
            price=i.price_cents / 100.0,
        )
        for i in (items or ())
    ]
