"""``Pending``: one event on its way to the sinks.

Built on the caller's thread with no mapping and no encoding; on the delivery thread each sink maps
and encodes it (the JetStream sink fills GA4 / Meta CAPI via ``apply_marketing``).

- ``event`` set: the event goes to every sink (JetStream: subject ``event.subject``, payload the
  envelope JSON, headers ``Nats-Msg-Id`` = ``event.event_id`` and the W3C trace context rebuilt from
  ``event.trace_id`` / ``span_id`` / ``trace_flags`` / ``trace_state``; collector:
  ``collector_from_event(event)``).
- only ``collector`` set: a ready collector payload (``Client.emit_*``), for collector sinks only.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from ._envelope import CommerceEvent, FacebookCAPIEvent, FacebookUserData, GA4EcommerceEvent, OrderItem

__all__ = ["ITEM_LAYOUT", "OnError", "Pending", "decode_pending", "encode_pending"]


@dataclass(slots=True)
class Pending:
    event: CommerceEvent | None = None
    items: list[OrderItem] = field(default_factory=list)
    collector: dict[str, Any] | None = None
    trace_flags: int = 1
    trace_state: str = ""
    #: how it reached the engine: "direct", "processor", "log_exporter", "span_exporter", "span", "fallback", "client"
    via: str = "direct"
    #: taken for delivery (by our processor, an exporter of ours or record_event's fallback); set only by :meth:`claim`
    claimed: bool = False

    def claim(self, via: str) -> bool:
        """Take this event for delivery as ``via``; True for exactly one of any number of racing callers.

        Atomic (a check-then-set under one process-wide lock held for two attribute writes): a batch
        exporter's worker thread and ``record_event``'s fallback can race for the same event and only
        one of them delivers it — never twice.
        """
        with _CLAIM_LOCK:
            if self.claimed:
                return False
            self.claimed = True
        self.via = via
        return True

    @property
    def event_id(self) -> str:
        if self.event is not None:
            return self.event.event_id
        props = (self.collector or {}).get("properties") or {}
        return str(props.get("event_id", ""))


_CLAIM_LOCK = threading.Lock()


def _reinit_after_fork() -> None:  # a thread of the parent may have held it at fork()
    global _CLAIM_LOCK
    _CLAIM_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)

#: ``on_error(error, pending)``: called (on the delivery thread, errors swallowed and logged) for every
#: event that is dropped or rejected for good; ``pending`` is None for failures not tied to one event.
OnError = Callable[[BaseException, "Pending | None"], None]


#: the spool item layout written by :func:`encode_pending` (the first element of its JSON array)
ITEM_LAYOUT = 2


def encode_pending(pending: Pending) -> bytes:
    """``pending`` as spool bytes, on the caller's thread in ``wal`` mode (no mapping work).

    Layout 2 (written now): one flat JSON array ``[2, items, collector, trace_flags, trace_state, via]``
    followed, when there is an event, by its fields ``id, type, timestamp, organization_id, user_id,
    session_id, data, ga4, facebook_capi, event_id, trace_id, span_id`` — orjson encodes one tuple in about
    a quarter of the dataclass walk it replaces (field names, nested objects, the ``claimed`` flag).
    Layout 1 (earlier releases): orjson's dataclass encoding of ``Pending`` (a JSON object).
    :func:`decode_pending` reads both.
    """
    ev = pending.event
    if ev is None:
        return _dumps(
            (ITEM_LAYOUT, pending.items, pending.collector, pending.trace_flags, pending.trace_state, pending.via)
        )
    return _dumps(
        (
            ITEM_LAYOUT,
            pending.items,
            pending.collector,
            pending.trace_flags,
            pending.trace_state,
            pending.via,
            ev.id,
            ev.type,
            ev.timestamp,
            ev.organization_id,
            ev.user_id,
            ev.session_id,
            ev.data,
            ev.ga4,
            ev.facebook_capi,
            ev.event_id,
            ev.trace_id,
            ev.span_id,
        )
    )


_dumps = orjson.dumps


def _capi(capi: Any) -> FacebookCAPIEvent:
    ud = capi.get("user_data")
    return FacebookCAPIEvent(
        event_name=capi["event_name"],
        event_time=capi["event_time"],
        action_source=capi.get("action_source", "website"),
        user_data=FacebookUserData(**ud) if ud is not None else None,
        custom_data=capi.get("custom_data"),
    )


def decode_pending(obj: Any) -> Pending:
    """The inverse of :func:`encode_pending` (from the decoded JSON, layout 2 or 1); raises on malformed input."""
    if isinstance(obj, list):
        if not obj or obj[0] != ITEM_LAYOUT or len(obj) not in (6, 18):
            raise ValueError(f"unknown spool item layout {obj[0] if obj else None!r} (length {len(obj)})")
        event = None
        if len(obj) == 18:
            eid, etype, ts, org, user, session, data, ga4, capi, event_id, trace_id, span_id = obj[6:]
            event = CommerceEvent(
                eid,
                etype,
                datetime.fromisoformat(ts),
                org,
                user,
                session,
                data,
                GA4EcommerceEvent.from_dict(ga4) if ga4 is not None else None,
                _capi(capi) if capi is not None else None,
                event_id,
                trace_id,
                span_id,
            )
        return Pending(
            event=event,
            items=[OrderItem(**i) for i in obj[1] or ()],
            collector=obj[2],
            trace_flags=int(obj[3]),
            trace_state=str(obj[4]),
            via=str(obj[5]),
        )
    ev = obj.get("event")
    event = None
    if ev is not None:
        ev = dict(ev)
        ev["timestamp"] = datetime.fromisoformat(ev["timestamp"])
        if ev.get("ga4") is not None:
            ev["ga4"] = GA4EcommerceEvent.from_dict(ev["ga4"])
        capi = ev.get("facebook_capi")
        if capi is not None:
            ev["facebook_capi"] = _capi(capi)
        event = CommerceEvent(**ev)
    return Pending(
        event=event,
        items=[OrderItem(**i) for i in obj.get("items") or ()],
        collector=obj.get("collector"),
        trace_flags=int(obj.get("trace_flags", 1)),
        trace_state=str(obj.get("trace_state", "")),
        via=str(obj.get("via", "direct")),
    )
