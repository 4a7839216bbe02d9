"""One-pass envelope encoding for the delivery thread: the JSON bytes of ``apply_marketing`` + ``to_json``.

:func:`encode_envelope` reads the catalog row of the event's type and writes the envelope's JSON object,
GA4 and Meta CAPI blocks included, straight into dicts handed to orjson: no ``GA4EcommerceEvent`` /
``FacebookCAPIEvent`` dataclasses, no ``to_dict`` walk, no copy of ``data``, and the event is left as it
is (blocks set by the caller — the seed-compatible ``Publisher`` — are encoded as given). The bytes are
exactly those of ``apply_marketing(event, items).to_json()`` (``tests/test_wire_golden.py`` compares the
two for every catalog type).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import orjson

from .._errors import EventValidationError
from ._catalog import CATALOG, GA4Rule, MetaRule
from ._envelope import CommerceEvent, OrderItem, format_timestamp
from ._hashing import capi_hash
from ._time import to_unix_seconds

__all__ = ["encode_envelope"]

_EMPTY = (None, "")
_LOWER_HEX64 = re.compile(r"[0-9a-f]{64}")
_UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)


def _ga4_block(rule: GA4Rule, fields: dict[str, Any], currency: str) -> dict[str, Any]:
    """``GA4EcommerceEvent(...).to_dict()`` of :func:`apply_marketing`, built directly."""
    out: dict[str, Any] = {"event_name": rule.event}
    if currency:
        out["currency"] = currency
    if rule.value:
        value = fields.get(rule.value)
        if isinstance(value, (int, float)) and value:
            out["value"] = float(value)
    if rule.items == "items":
        source = fields.get("items") or ()
        if source:
            items = []
            for i in source:
                item: dict[str, Any] = {
                    "item_id": i.product_id,
                    "item_name": i.product_name,
                    "price": float(i.price),
                    "quantity": int(i.quantity),
                }
                if currency:
                    item["currency"] = currency
                items.append(item)
            out["items"] = items
    elif rule.items == "product" and fields.get("product_id"):
        item = {
            "item_id": str(fields["product_id"]),
            "item_name": str(fields.get("product_name", "")),
            "price": float(fields.get("price") or 0.0),
            "quantity": 1,
        }
        if currency:
            item["currency"] = currency
        out["items"] = [item]
    if rule.params:
        params = {k: fields[f] for k, f in rule.params if fields.get(f) not in _EMPTY}
        if params:
            out["parameters"] = params
    return out


@functools.lru_cache(maxsize=256)
def _custom_plan(custom: tuple[tuple[str, str], ...]) -> tuple[tuple[str, int, str], ...]:
    """A ``MetaRule.custom`` read once: ``(key, 0, literal)`` for ``=literal``, ``(key, 1, field)`` for
    ``[]field`` (a one-element list), ``(key, 2, field)`` for a field (as ``apply_marketing`` reads them)."""
    plan = []
    for key, src in custom:
        if src.startswith("="):
            plan.append((key, 0, src[1:]))
        elif src.startswith("[]"):
            plan.append((key, 1, src[2:]))
        else:
            plan.append((key, 2, src))
    return tuple(plan)


def _unix_seconds(ts: datetime) -> int:
    """``to_unix_seconds`` (floored, naive = UTC), with a shortcut for the aware UTC timestamps we record."""
    if ts.tzinfo is _UTC:
        d = ts - _EPOCH  # days * 86400 + seconds is the floor (timedelta keeps seconds in 0..86399)
        return d.days * 86_400 + d.seconds
    return to_unix_seconds(ts)


def _capi_block(meta: MetaRule, fields: dict[str, Any], event: CommerceEvent) -> dict[str, Any]:
    """``FacebookCAPIEvent(...).to_dict()`` of :func:`apply_marketing`, built directly."""
    out: dict[str, Any] = {
        "event_name": meta.event,
        "event_time": _unix_seconds(event.timestamp),
        "action_source": "website",
    }
    if meta.user_data is not None:
        ud: dict[str, Any] = {}
        em = ext = ""
        for key, f in meta.user_data:
            if key == "em":
                em = str(fields.get(f) or "")
            elif key == "external_id":
                ext = str(fields.get(f) or "")
        if em:
            # record_event already wrote a SHA-256 digest (PII policy): kept as is, as capi_hash would
            em = em if len(em) == 64 and _LOWER_HEX64.fullmatch(em) else capi_hash("em", em)
            if em:
                ud["em"] = em
        if ext:
            ud["external_id"] = ext
        out["user_data"] = ud
    if meta.custom:
        custom: dict[str, Any] = {}
        for key, how, arg in _custom_plan(meta.custom):
            custom[key] = fields.get(arg, "") if how == 2 else (arg if how == 0 else [fields.get(arg, "")])
        out["custom_data"] = custom
    return out


def encode_envelope(event: CommerceEvent, items: Sequence[OrderItem] = ()) -> bytes:
    """The envelope JSON of ``event`` with its catalog GA4 / Meta CAPI blocks (``event`` is not changed).

    Same bytes as ``apply_marketing(event, items).to_json()``; raises ``EventValidationError`` when the
    event cannot be encoded.
    """
    out: dict[str, Any] = {
        "id": event.id,
        "type": event.type,
        "timestamp": format_timestamp(event.timestamp),
        "organization_id": event.organization_id,
    }
    if event.user_id:
        out["user_id"] = event.user_id
    if event.session_id:
        out["session_id"] = event.session_id
    data = event.data
    out["data"] = data if data is not None else {}
    ga4 = event.ga4
    capi = event.facebook_capi
    spec = CATALOG.get(event.type)
    if spec is not None and ((spec.ga4 is not None and ga4 is None) or (spec.meta is not None and capi is None)):
        fields: dict[str, Any] = {**data, "user_id": event.user_id, "items": items} if data else {
            "user_id": event.user_id, "items": items
        }  # fmt: skip
        if ga4 is not None:
            out["ga4"] = ga4.to_dict()
        elif spec.ga4 is not None:
            out["ga4"] = _ga4_block(spec.ga4, fields, str(fields.get("currency") or ""))
        if capi is not None:
            out["facebook_capi"] = capi.to_dict()
        elif spec.meta is not None:
            out["facebook_capi"] = _capi_block(spec.meta, fields, event)
    else:
        if ga4 is not None:
            out["ga4"] = ga4.to_dict()
        if capi is not None:
            out["facebook_capi"] = capi.to_dict()
    if event.event_id:
        out["event_id"] = event.event_id
    if event.trace_id:
        out["trace_id"] = event.trace_id
    if event.span_id:
        out["span_id"] = event.span_id
    try:
        return orjson.dumps(out)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise EventValidationError(f"event {event.type!r} is not JSON-serialisable: {exc}") from exc
