"""One-pass envelope encoding for the delivery thread: the JSON bytes of ``apply_marketing`` + ``to_json``.

:func:`encode_envelope` writes the envelope's JSON object, GA4 and Meta CAPI blocks included, straight
into dicts handed to orjson: no ``GA4EcommerceEvent`` / ``FacebookCAPIEvent`` dataclasses, no ``to_dict``
walk, no copy of ``data``, and the event is left as it is (blocks set by the caller — the
seed-compatible ``Publisher`` — are encoded as given). For a catalog type whose blocks are not preset
(the recorded case) the whole envelope is written by a function compiled once per catalog row
(:func:`_compile`): straight-line code with the row's names and constants inlined, so an event costs
no rule walk and one call. The bytes are exactly those of ``apply_marketing(event, items).to_json()``
(``tests/test_wire_golden.py`` compares the two for every catalog type).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from .._errors import EventValidationError
from ._catalog import CATALOG, EventSpec, GA4Rule, MetaRule
from ._envelope import CommerceEvent, OrderItem, format_timestamp
from ._hashing import capi_hash
from ._time import to_unix_seconds

__all__ = ["encode_envelope"]

_EMPTY = (None, "")
_UTC = timezone.utc

#: ``[(lo, hi, unix second, "YYYY-MM-DDTHH:MM:SS.", "YYYY-MM-DDTHH:MM:SSZ")]`` of the last aware-UTC second
#: formatted (events recorded in the same second share it): an aware UTC timestamp ``ts`` with ``lo <= ts < hi``
#: is in that second (two datetime comparisons: no float ``timestamp()``, no ``int()``). The tuple is replaced as a
#: whole: a racing thread reads an old or a new one, both right.
_second: list[tuple[datetime, datetime, int, str, str]] = [
    (datetime.max.replace(tzinfo=timezone.utc), datetime.min.replace(tzinfo=timezone.utc), 0, "", "")
]
_ONE_SECOND = timedelta(seconds=1)

#: Aware UTC timestamps in [1970, 2106) take the fast path: ``int(ts.timestamp())`` is then the floored second
#: (the float is the correctly rounded ``seconds + µs / 1e6``; below 2**32 its spacing is under 1e-6, so a
#: fraction of at most 0.999999 never rounds up to the next second).
_FAST_STAMP_LIMIT = 4294967296.0

#: ``not s.encode().translate(None, _HEX_DIGITS)`` for an ASCII ``s``: every character a lower-case hex digit
#: (what ``[0-9a-f]{64}`` fullmatches for a 64-character ASCII string, in half the time of the regex)
_HEX_DIGITS = b"0123456789abcdef"


def _stamp(ts: datetime) -> tuple[str, int]:
    """``(format_timestamp(ts), to_unix_seconds(ts))``, with a fast path for the aware UTC timestamps we record
    (the compiled encoders of :func:`_compile` inline the cached-second case)."""
    if ts.tzinfo is _UTC:
        cached = _second[0]
        if not cached[0] <= ts < cached[1]:
            t = ts.timestamp()
            if not 0.0 <= t < _FAST_STAMP_LIMIT:
                return format_timestamp(ts), to_unix_seconds(ts)
            lo = ts.replace(microsecond=0)
            iso = lo.replace(tzinfo=None).isoformat()
            cached = _second[0] = (lo, lo + _ONE_SECOND, int(t), iso + ".", iso + "Z")
        us = ts.microsecond
        if us % 10:  # RFC3339Nano: fractional zeros trimmed (none to trim here)
            return f"{cached[3]}{us:06d}Z", cached[2]
        if us:
            return f"{cached[3]}{us:06d}".rstrip("0") + "Z", cached[2]
        return cached[4], cached[2]
    return format_timestamp(ts), to_unix_seconds(ts)


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
    return em if len(em) == 64 and em.isascii() and not em.encode().translate(None, _HEX_DIGITS) else capi_hash("em", em)


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
#: ``encode(event, items)``: the envelope JSON of an event of one catalog row whose blocks are not preset.
_Encoder = Callable[[CommerceEvent, Sequence[OrderItem]], bytes]
_COMPILED: dict[str, tuple[EventSpec, _Encoder]] = {}  # by type: (its catalog row, the row's encoder)


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
            "    if not (len(em) == 64 and em.isascii() and not em.encode().translate(None, _HEX_DIGITS)):",
            "        em = _capi_hash('em', em)",
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


_STAMP_SOURCE = [  # _stamp's cached-second case, inlined: sets ``stamp`` and ``event_time``
    "ts = ev.timestamp",
    "cached = _second[0]",
    "if ts.tzinfo is _UTC and cached[0] <= ts < cached[1]:",
    "    event_time = cached[2]",
    "    us = ts.microsecond",
    "    if us % 10:",
    "        stamp = '%s%06dZ' % (cached[3], us)",
    "    elif us:",
    "        stamp = f'{cached[3]}{us:06d}'.rstrip('0') + 'Z'",
    "    else:",
    "        stamp = cached[4]",
    "else:",
    "    stamp, event_time = _stamp(ts)",
]


def _compile(spec: EventSpec) -> _Encoder:
    """The encoder of one catalog row for events without preset blocks: the whole envelope, its blocks written
    by straight-line code with the row's rules read once (names and constants inlined)."""
    body = [
        *_STAMP_SOURCE,
        "out = {'id': ev.id, 'type': ev.type, 'timestamp': stamp, 'organization_id': ev.organization_id}",
        "uid = ev.user_id",
        "if uid:",
        "    out['user_id'] = uid",
        "x = ev.session_id",
        "if x:",
        "    out['session_id'] = x",
        "d = ev.data",
        "if d is None:",
        "    d = {}",
        "out['data'] = d",
    ]
    if spec.ga4 is not None:
        body += _ga4_source(spec.ga4)
    if spec.meta is not None:
        body += _capi_source(spec.meta)
    for key in ("event_id", "trace_id", "span_id"):
        body += [f"x = ev.{key}", "if x:", f"    out[{key!r}] = x"]
    body += [
        "try:",
        "    return _dumps(out)",
        "except (TypeError, _JSONEncodeError) as exc:",
        "    raise _invalid(ev, exc) from exc",
    ]
    source = "def encode(ev, items):\n" + "".join(f"    {line}\n" for line in body)
    namespace: dict[str, Any] = {
        "_EMPTY": _EMPTY,
        "_HEX_DIGITS": _HEX_DIGITS,
        "_capi_hash": capi_hash,
        "_UTC": _UTC,
        "_second": _second,
        "_stamp": _stamp,
        "_dumps": orjson.dumps,
        "_JSONEncodeError": orjson.JSONEncodeError,
        "_invalid": _invalid,
    }
    exec(compile(source, f"<otel_commerce wire encoder: {spec.type}>", "exec"), namespace)
    fn: _Encoder = namespace["encode"]
    return fn


def _invalid(event: CommerceEvent, exc: Exception) -> EventValidationError:
    return EventValidationError(f"event {event.type!r} is not JSON-serialisable: {exc}")


def encode_envelope(event: CommerceEvent, items: Sequence[OrderItem] = ()) -> bytes:
    """The envelope JSON of ``event`` with its catalog GA4 / Meta CAPI blocks (``event`` is not changed).

    Same bytes as ``apply_marketing(event, items).to_json()``; raises ``EventValidationError`` when the
    event cannot be encoded.
    """
    ga4 = event.ga4
    capi = event.facebook_capi
    spec = CATALOG.get(event.type)
    if spec is not None and ga4 is None and capi is None:  # the recorded case: the row's compiled encoder
        entry = _COMPILED.get(event.type)
        if entry is None or entry[0] is not spec:  # first use, or the row was registered again
            entry = _COMPILED[event.type] = (spec, _compile(spec))
        return entry[1](event, items)
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
        raise _invalid(event, exc) from exc
