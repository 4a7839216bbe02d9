"""One-pass envelope encoding for the delivery thread: the JSON bytes of ``apply_marketing`` + ``to_json``.

:func:`encode_envelope` writes the envelope's JSON object, GA4 and Meta CAPI blocks included, straight
into dicts handed to orjson: no ``GA4EcommerceEvent`` / ``FacebookCAPIEvent`` dataclasses, no ``to_dict``
walk, no copy of ``data``, and the event is left as it is (blocks set by the caller — the
seed-compatible ``Publisher`` — are encoded as given). For a catalog type whose blocks are not preset
(the recorded case) the two blocks are written by a function compiled once per catalog row
(:func:`_blocks_for`): straight-line code with the row's names and constants inlined, so an event costs
no rule walk. The bytes are exactly those of ``apply_marketing(event, items).to_json()``
(``tests/test_wire_golden.py`` compares the two for every catalog type).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import orjson

from .._errors import EventValidationError
from ._catalog import CATALOG, EventSpec, GA4Rule, MetaRule
from ._envelope import CommerceEvent, OrderItem, format_timestamp
from ._hashing import capi_hash
from ._time import to_unix_seconds

__all__ = ["encode_envelope"]

_EMPTY = (None, "")
_LOWER_HEX64 = re.compile(r"[0-9a-f]{64}").fullmatch
_UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)

#: ``(unix second, "YYYY-MM-DDTHH:MM:SS")`` of the last aware-UTC timestamp formatted (events recorded in
#: the same second share it). Replaced as a whole: a racing thread reads an old or a new pair, both right.
_second: tuple[int, str] = (-(2**62), "")


def _stamp(ts: datetime) -> tuple[str, int]:
    """``(format_timestamp(ts), to_unix_seconds(ts))``, with a fast path for the aware UTC timestamps we record."""
    global _second
    if ts.tzinfo is not _UTC:
        return format_timestamp(ts), to_unix_seconds(ts)
    d = ts - _EPOCH  # days * 86400 + seconds is the floor (timedelta keeps seconds in 0..86399)
    secs = d.days * 86_400 + d.seconds
    cached = _second
    if cached[0] != secs:
        cached = _second = (secs, ts.replace(microsecond=0, tzinfo=None).isoformat())
    us = ts.microsecond
    if us:  # RFC3339Nano: fractional zeros trimmed
        return f"{cached[1]}.{us:06d}".rstrip("0") + "Z", secs
    return cached[1] + "Z", secs


def _ga4_block(rule: GA4Rule, fields: dict[str, Any], currency: str) -> dict[str, Any]:
    """``GA4EcommerceEvent(...).to_dict()`` of :func:`apply_marketing`, built directly (preset-block path)."""
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


def _capi_digest(em: str) -> str:
    """The ``em`` value: a digest record_event already wrote (PII policy) is kept as is, as capi_hash would."""
    return em if len(em) == 64 and _LOWER_HEX64(em) else capi_hash("em", em)


def _capi_block(meta: MetaRule, fields: dict[str, Any], event_time: int) -> dict[str, Any]:
    """``FacebookCAPIEvent(...).to_dict()`` of :func:`apply_marketing`, built directly (preset-block path)."""
    out: dict[str, Any] = {"event_name": meta.event, "event_time": event_time, "action_source": "website"}
    if meta.user_data is not None:
        ud: dict[str, Any] = {}
        em = ext = ""
        for key, f in meta.user_data:
            if key == "em":
                em = str(fields.get(f) or "")
            elif key == "external_id":
                ext = str(fields.get(f) or "")
        if em:
            em = _capi_digest(em)
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


# ---------------------------------------------------------------------------- compiled per catalog row
#: ``blocks(out, data, user_id, items, event_time)`` writes ``out["ga4"]`` / ``out["facebook_capi"]``.
_Blocks = Callable[[dict[str, Any], dict[str, Any], str, Sequence[OrderItem], int], None]
_COMPILED: dict[int, tuple[EventSpec, _Blocks]] = {}


def _get(field: str, default: str | None = None) -> str:
    """Source of ``fields.get(field[, default])`` where ``fields = {**data, "user_id": uid, "items": items}``."""
    if field == "user_id":
        return "uid"
    if field == "items":
        return "items"
    return f"d.get({field!r})" if default is None else f"d.get({field!r}, {default!r})"


def _ga4_source(rule: GA4Rule) -> list[str]:
    lines = [
        f"cur = str({_get('currency')} or '')",
        f"g = {{'event_name': {rule.event!r}}}",
        "if cur:",
        "    g['currency'] = cur",
    ]
    if rule.value:
        lines += [
            f"v = {_get(rule.value)}",
            "if isinstance(v, (int, float)) and v:",
            "    g['value'] = float(v)",
        ]
    if rule.items == "items":
        lines += [
            f"src = {_get('items')} or ()",
            "if src:",
            "    lst = []",
            "    for i in src:",
            "        it = {'item_id': i.product_id, 'item_name': i.product_name, 'price': float(i.price),",
            "              'quantity': int(i.quantity)}",
            "        if cur:",
            "            it['currency'] = cur",
            "        lst.append(it)",
            "    g['items'] = lst",
        ]
    elif rule.items == "product":
        lines += [
            f"if {_get('product_id')}:",
            f"    it = {{'item_id': str({_get('product_id')}), 'item_name': str({_get('product_name', '')}),",
            f"          'price': float({_get('price')} or 0.0), 'quantity': 1}}",
            "    if cur:",
            "        it['currency'] = cur",
            "    g['items'] = [it]",
        ]
    if rule.params:
        lines.append("p = {}")
        for key, f in rule.params:
            lines += [f"x = {_get(f)}", "if x not in _EMPTY:", f"    p[{key!r}] = x"]
        lines += ["if p:", "    g['parameters'] = p"]
    lines.append("out['ga4'] = g")
    return lines


def _capi_source(meta: MetaRule) -> list[str]:
    lines = [f"c = {{'event_name': {meta.event!r}, 'event_time': event_time, 'action_source': 'website'}}"]
    if meta.user_data is not None:
        lines += ["em = ext = ''"]
        for key, f in meta.user_data:
            if key == "em":
                lines.append(f"em = str({_get(f)} or '')")
            elif key == "external_id":
                lines.append(f"ext = str({_get(f)} or '')")
        lines += [
            "ud = {}",
            "if em:",
            "    em = em if len(em) == 64 and _hex64(em) else _capi_hash('em', em)",
            "    if em:",
            "        ud['em'] = em",
            "if ext:",
            "    ud['external_id'] = ext",
            "c['user_data'] = ud",
        ]
    if meta.custom:
        items = []
        for key, how, arg in _custom_plan(meta.custom):
            value = _get(arg, "") if how == 2 else (repr(arg) if how == 0 else f"[{_get(arg, '')}]")
            items.append(f"{key!r}: {value}")
        # a dict display evaluates keys and values in order: the same dict as the rule's loop builds
        lines.append(f"c['custom_data'] = {{{', '.join(items)}}}")
    lines.append("out['facebook_capi'] = c")
    return lines


def _compile(spec: EventSpec) -> _Blocks:
    """The blocks writer of one catalog row (its rules read once, their names and constants inlined)."""
    body: list[str] = []
    if spec.ga4 is not None:
        body += _ga4_source(spec.ga4)
    if spec.meta is not None:
        body += _capi_source(spec.meta)
    source = "def blocks(out, d, uid, items, event_time):\n" + "".join(f"    {line}\n" for line in body or ["pass"])
    namespace: dict[str, Any] = {"_EMPTY": _EMPTY, "_hex64": _LOWER_HEX64, "_capi_hash": capi_hash}
    exec(compile(source, f"<otel_commerce wire encoder: {spec.type}>", "exec"), namespace)
    fn: _Blocks = namespace["blocks"]
    return fn


def _blocks_for(spec: EventSpec) -> _Blocks:
    entry = _COMPILED.get(id(spec))
    if entry is None or entry[0] is not spec:
        entry = (spec, _compile(spec))
        _COMPILED[id(spec)] = entry
    return entry[1]


def encode_envelope(event: CommerceEvent, items: Sequence[OrderItem] = ()) -> bytes:
    """The envelope JSON of ``event`` with its catalog GA4 / Meta CAPI blocks (``event`` is not changed).

    Same bytes as ``apply_marketing(event, items).to_json()``; raises ``EventValidationError`` when the
    event cannot be encoded.
    """
    stamp, event_time = _stamp(event.timestamp)
    out: dict[str, Any] = {
        "id": event.id,
        "type": event.type,
        "timestamp": stamp,
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
    if spec is not None and ga4 is None and capi is None:  # the recorded case: the row's compiled writer
        if spec.ga4 is not None or spec.meta is not None:
            _blocks_for(spec)(out, data or {}, event.user_id, items, event_time)
    elif spec is not None and ((spec.ga4 is not None and ga4 is None) or (spec.meta is not None and capi is None)):
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
            out["facebook_capi"] = _capi_block(spec.meta, fields, event_time)
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
