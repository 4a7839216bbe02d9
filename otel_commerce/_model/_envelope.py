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
from decimal import Decimal
from typing import Any

import orjson

from .._config import DEFAULT_MAX_EVENT_BYTES
from .._errors import EventValidationError

__all__ = [
    "CommerceEvent",
    "FacebookCAPIEvent",
    "FacebookUserData",
    "GA4EcommerceEvent",
    "GA4Item",
    "LineItemInfo",
    "Order",
    "OrderItem",
    "DEFAULT_MAX_EVENT_BYTES",
    "INT64_MAX",
    "INT64_MIN",
    "MAX_DEPTH",
    "check_json_value",
    "check_text",
    "clean_data",
    "freeze_data",
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


# --------------------------------------------------------------------------- validation
#: The OTLP log encoder's integer range (AnyValue ``int_value`` is an int64).
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
#: Containers nested at most this deep in ``data`` (the collector decodes an OTLP body up to 32 levels,
#: protobuf parsers stop at 100 message levels: 3 per map level, plus the envelope and the record).
MAX_DEPTH = 16
#: Default bound of the estimated encoded envelope (``_config.DEFAULT_MAX_EVENT_BYTES``): NATS's default
#: ``max_payload`` (1 MiB) minus room for headers (``Nats-Msg-Id``, ``traceparent``…) and GA4/Meta blocks.


class _Refused(Exception):
    """Internal: unwinds the walk, collecting the path only when something is refused."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str] = []


def _path(base: str, parts: list[str]) -> str:
    return base + "".join(reversed(parts))


def _str_ok(s: str) -> bool:
    """False for a string no UTF-8 encoder accepts (a lone surrogate)."""
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _checked_key(k: Any) -> str:
    """A data key as the freeze walks keep it: a plain ``str`` (a subclass's value), else ``_Refused`` (not a str,
    or a lone surrogate). The walks skip it for a plain ASCII key (or one they cached as checked)."""
    if type(k) is not str:
        if not isinstance(k, str):
            raise _Refused(f"has a non-string key {k!r:.60} ({type(k).__name__})")
        k = str.__str__(k)
    if not (k.isascii() or _str_ok(k)):
        raise _Refused(f"has a key {k!r:.60} with a lone surrogate")
    return k  # type: ignore[no-any-return]  # a str (checked above)


def check_text(value: str, where: str) -> str:
    """Raise ``EventValidationError`` if ``value`` (a str) holds a lone surrogate; returns ``value``."""
    if not _str_ok(value):
        raise EventValidationError(f"{where} contains a lone surrogate (not encodable as UTF-8)")
    return value


class _Walk:
    """One pass over a JSON-like value: checks every encoder's rules, converts, estimates the size.

    Conversions (the result is a new container only where something changed): a finite ``Decimal`` →
    ``float``; any other ``Mapping`` (``MappingProxyType``…) → ``dict``; subclasses of ``str``/``int``/
    ``float`` (enums) → the plain type. ``size`` is an estimate of the JSON size in bytes.
    """

    __slots__ = ("size",)

    def __init__(self) -> None:
        self.size = 0

    def value(self, v: Any, depth: int) -> Any:
        t = type(v)
        if t is str:
            if not _str_ok(v):
                raise _Refused("contains a lone surrogate (not encodable as UTF-8)")
            self.size += len(v) + 3
            return v
        if t is int:
            if not INT64_MIN <= v <= INT64_MAX:
                raise _Refused(f"is an integer of {v.bit_length()} bits: integers must fit in 64 bits (OTLP int64)")
            self.size += 21
            return v
        if t is float:
            if not math.isfinite(v):
                raise _Refused(f"is {v!r}: numbers must be finite")
            self.size += 25
            return v
        if v is None or t is bool:
            self.size += 5
            return v
        if t is dict or t is list or t is tuple or isinstance(v, (Mapping, list, tuple)):
            if depth >= MAX_DEPTH:
                raise _Refused(f"is nested more than {MAX_DEPTH} levels deep")
            if t is dict or (t is not list and t is not tuple and isinstance(v, Mapping)):
                return self.mapping(v, depth + 1)
            return self.sequence(v, depth + 1)
        if isinstance(v, Decimal):
            f = float(v) if v.is_finite() else math.nan
            if not math.isfinite(f):
                raise _Refused(f"is Decimal({str(v)!r}): amounts must be finite numbers")
            self.size += 25
            return f
        if isinstance(v, bool):  # pragma: no cover - bool cannot be subclassed
            return bool(v)
        if isinstance(v, str):
            return self.value(str.__str__(v), depth)
        if isinstance(v, int):
            return self.value(int(v), depth)
        if isinstance(v, float):
            return self.value(float(v), depth)
        raise _Refused(
            f"is not JSON-serialisable: a {type(v).__name__} (allowed: str, int, float, Decimal, bool, None, mappings, lists)"
        )

    def mapping(self, m: Mapping[Any, Any], depth: int) -> dict[str, Any]:
        out: dict[str, Any] | None = None if type(m) is dict else {}
        for k, v in m.items():
            key = k
            if type(k) is not str:
                if not isinstance(k, str):
                    exc = _Refused(f"has a non-string key {k!r:.60} ({type(k).__name__})")
                    raise exc
                key = str.__str__(k)
            if not _str_ok(key):
                raise _Refused(f"has a key {key!r:.60} with a lone surrogate")
            self.size += len(key) + 4
            try:
                new = self.value(v, depth)
            except _Refused as r:
                r.path.append(f".{key}")
                raise
            if out is not None:
                out[key] = new
            elif new is not v or key is not k:
                out = {}
                for k2, v2 in m.items():  # copy what was already checked, then go on
                    if k2 is k:
                        break
                    out[k2] = v2
                out[key] = new
        return m if out is None else out  # type: ignore[return-value]

    def sequence(self, seq: list[Any] | tuple[Any, ...], depth: int) -> list[Any] | tuple[Any, ...]:
        out: list[Any] | None = None
        for i, v in enumerate(seq):
            try:
                new = self.value(v, depth)
            except _Refused as r:
                r.path.append(f"[{i}]")
                raise
            if out is not None:
                out.append(new)
            elif new is not v:
                out = list(seq[:i])
                out.append(new)
            self.size += 1
        if out is None:
            return seq
        return out if type(seq) is list else tuple(out)


class _Freeze(_Walk):
    """:class:`_Walk` that also freezes: every mapping becomes a new ``dict`` and every list / tuple a new
    ``list`` (JSON-shaped data shares nothing with the caller's any more; scalars are immutable). One
    pass validates, converts and copies; error paths are built only when a value is refused."""

    __slots__ = ()

    def mapping(self, m: Mapping[Any, Any], depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        size = 0
        for k, v in m.items():
            if type(k) is not str or not k.isascii():  # a plain ASCII key needs no check
                k = _checked_key(k)
            t = type(v)
            if t is str and v.isascii():
                size += len(k) + len(v) + 7
                out[k] = v
            elif t is float and math.isfinite(v):
                size += len(k) + 29
                out[k] = v
            elif t is int and INT64_MIN <= v <= INT64_MAX:
                size += len(k) + 25
                out[k] = v
            else:
                size += len(k) + 4
                try:
                    out[k] = self.value(v, depth)
                except _Refused as r:
                    r.path.append(f".{k}")
                    raise
        self.size += size
        return out

    def sequence(self, seq: list[Any] | tuple[Any, ...], depth: int) -> list[Any]:
        out: list[Any] = []
        for i, v in enumerate(seq):
            try:
                out.append(self.value(v, depth))
            except _Refused as r:
                r.path.append(f"[{i}]")
                raise
        self.size += len(seq)
        return out


def _walked(walk: _Walk, value: Mapping[str, Any], path: str, max_bytes: int | None, extra_bytes: int) -> dict[str, Any]:
    """``walk`` over ``value`` (a mapping), the refusal turned into ``EventValidationError`` naming its path,
    then the size bound: the estimate first, measured exactly only when it might be over (escapes,
    multi-byte text)."""
    try:
        out = walk.value(value, 0)
    except _Refused as r:
        raise EventValidationError(f"{_path(path, r.path)} {r.reason}") from None
    if not isinstance(out, dict):
        raise EventValidationError(f"{path} must be a mapping, got {type(value).__name__}")
    if max_bytes is not None and (walk.size + extra_bytes) * 6 > max_bytes:
        size = len(orjson.dumps(out)) + extra_bytes
        if size > max_bytes:
            raise EventValidationError(
                f"{path} is too large: about {size} bytes encoded, over the bound of {max_bytes} bytes "
                "(OTEL_COMMERCE_MAX_EVENT_BYTES)"
            )
    return out


def freeze_data(
    value: Mapping[str, Any], path: str = "data", *, max_bytes: int | None = DEFAULT_MAX_EVENT_BYTES, extra_bytes: int = 0
) -> dict[str, Any]:
    """:func:`clean_data`'s rules and conversions, returning a frozen copy (no dict or list shared with
    ``value``; tuples become lists) made in the same pass. Raises ``EventValidationError``."""
    return _walked(_Freeze(), value, path, max_bytes, extra_bytes)


def clean_data(
    value: Mapping[str, Any], path: str = "data", *, max_bytes: int | None = DEFAULT_MAX_EVENT_BYTES, extra_bytes: int = 0
) -> dict[str, Any]:
    """Check ``value`` against every encoder after us and return it, converted where needed.

    Refused with ``EventValidationError`` (naming the path, e.g. ``data.items[2].qty``): integers
    outside int64, non-finite floats and ``Decimal``s, strings or keys with lone surrogates, non-string
    keys, containers nested deeper than :data:`MAX_DEPTH`, types other than str/int/float/Decimal/bool/
    None/mappings/lists/tuples, and an estimated encoded size (plus ``extra_bytes``) over ``max_bytes``.
    A finite ``Decimal`` becomes a ``float``; a non-dict ``Mapping`` a ``dict``. Unchanged input is
    returned as is (no copy on the happy path).
    """
    return _walked(_Walk(), value, path, max_bytes, extra_bytes)


def check_json_value(value: Any, path: str = "data") -> None:
    """Raise ``EventValidationError`` unless ``value`` passes :func:`clean_data`'s rules (no size bound)."""
    try:
        _Walk().value(value, 0)
    except _Refused as r:
        raise EventValidationError(f"{_path(path, r.path)} {r.reason}") from None


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
