"""Recording: ``record_event()`` turns a business event into an OTel log record and/or span event.

It validates, fixes ``event_id``, timestamp and trace context once, applies the PII policy and emits.
No I/O and no GA4/CAPI mapping happen here: the delivery thread does that. When no OTel pipeline with
our processor takes the record, the event is handed to the delivery engine directly (``via=direct``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import orjson
from opentelemetry import _logs, trace
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.context import Context
from opentelemetry.trace import DEFAULT_TRACE_STATE, SpanContext

from .._delivery import _metrics
from .._errors import EventValidationError
from .._model import (
    CATALOG,
    CommerceEvent,
    Order,
    Pending,
    entity_id,
    fields_from_order,
    format_timestamp,
    subject_for,
    uuid7,
)
from .._model._catalog import _COMMON_CURRENCIES as _CURRENCIES
from .._model._catalog import (
    COLLECTOR_MAX_REVENUE,
    ENVELOPE_OVERHEAD,
    RESERVED_DATA_KEYS,
    Kind,
    check_catalog_type,
    check_data,
    check_fields,
    check_ids,
    check_reserved,
    field_kinds,
    items_size,
)
from .._model._envelope import _path, _Refused, freeze_data
from .._model._frozen import copy_items, copy_mapping
from .._model._identity import event_id_for, once_event_id
from .._model._time import to_unix_ns, utc
from .._otel import CommerceLogRecordProcessor, _sdk, _slot
from .._scope import SCHEMA_URL, SCOPE_NAME, SCOPE_VERSION
from ._pii import _FreezePii, apply_pii_top, mask_id
from ._transaction import hold, holder_for

__all__ = [
    "CommerceLogRecord",
    "build_pending",
    "emit_pending",
    "envelope_body",
    "event_attributes",
    "flat_attributes",
    "record_event",
]

_ORDER_DATA = ("order_id", "revenue", "currency", "email")


class CommerceLogRecord(LogRecord):
    """An API log record that also carries the ``Pending`` item (claim by reference).

    Our processor and exporter deliver that original event, never what they read back from the record,
    so SDK attribute-length limits cannot truncate delivered data. Other processors and exporters see
    an ordinary log record.
    """

    commerce_pending: Pending | None = None

    def __copy__(self) -> CommerceLogRecord:
        """A shallow copy, as ``copy.copy`` makes one through the reduce protocol (the SDK's batch processor
        copies every record it queues), without that detour: ~0.4 µs instead of ~2 µs."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new


def envelope_body(event: CommerceEvent, items: list[Any] | None = None, *, mask: bool = False) -> dict[str, Any]:
    """The envelope-shaped body (``OTEL_COMMERCE_LOG_BODY=envelope``, and the span event's payload).

    The envelope fields (no GA4/CAPI blocks), plus ``items`` when there are any. ``mask``: e-mail- or
    IP-shaped ``id`` / ``user_id`` / ``session_id`` become their digests (the PII policy for OTel signals;
    the delivered envelope keeps them raw).
    """
    body: dict[str, Any] = {
        "id": mask_id(event.id) if mask else event.id,
        "type": event.type,
        "timestamp": format_timestamp(event.timestamp),
        "organization_id": event.organization_id,
        "data": event.data,
        "event_id": event.event_id,
    }
    if event.user_id:
        body["user_id"] = mask_id(event.user_id) if mask else event.user_id
    if event.session_id:
        body["session_id"] = mask_id(event.session_id) if mask else event.session_id
    if items:
        body["items"] = [i.to_dict() for i in items]
    return body


def flat_attributes(event: CommerceEvent, *, mask: bool = False) -> dict[str, Any]:
    """The flat ``commerce.*`` attributes backends query (README "Recording events" lists them).

    ``commerce.event_id``, ``commerce.id``, ``commerce.type``, ``commerce.organization_id`` (str);
    ``commerce.user_id`` / ``commerce.session_id`` (str, when set); ``commerce.revenue`` (float, currency
    units: the type's money field) and ``commerce.currency`` (str), when the data has them. ``mask``: see
    :func:`envelope_body`.
    """
    eid, uid, sid = event.id, event.user_id, event.session_id
    # an identifier-like id (letters, digits, _) has none of the e-mail / phone / IP shapes' characters
    attrs: dict[str, Any] = {
        "commerce.event_id": event.event_id,
        "commerce.id": mask_id(eid) if mask and not eid.isidentifier() else eid,
        "commerce.type": event.type,
        "commerce.organization_id": event.organization_id,
    }
    if uid:
        attrs["commerce.user_id"] = mask_id(uid) if mask and not uid.isidentifier() else uid
    if sid:
        attrs["commerce.session_id"] = mask_id(sid) if mask and not sid.isidentifier() else sid
    data = event.data
    money = data.get(_MONEY_FIELD.get(event.type, "revenue"))
    t = type(money)
    if t is float or (t is not bool and isinstance(money, (int, float))):
        attrs["commerce.revenue"] = float(money)  # type: ignore[arg-type]  # an int or float (checked above)
    currency = data.get("currency")
    if currency and isinstance(currency, str):
        attrs["commerce.currency"] = currency
    return attrs


#: catalog type -> its money field (``commerce.revenue``); other types read ``revenue``
_MONEY_FIELD = {name: spec.money for name, spec in CATALOG.items() if spec.money}


def event_attributes(event: CommerceEvent, items: list[Any] | None = None, *, mask: bool = False) -> dict[str, Any]:
    """All attributes of the log record: the flat ones plus ``commerce.data`` (map) and ``commerce.items``.

    ``commerce.data`` is the ``data`` map and ``commerce.items`` the order items (list of maps:
    ``product_id``, ``product_name``, ``sku``, ``quantity``, ``price``) — complex attributes, allowed on
    log records by the event semantic conventions (OTLP ``kvlist_value`` / ``array_value``).
    """
    attrs = flat_attributes(event, mask=mask)
    attrs["commerce.data"] = event.data
    if items:
        attrs["commerce.items"] = [i.to_dict() for i in items]
    return attrs


class _NoItems(list):  # type: ignore[type-arg]
    """The one shared ``Pending.items`` of events without items: empty and read-only (a queued event then
    holds one GC-tracked list less; a write raises instead of reaching every other event)."""

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object) -> Any:
        raise TypeError("the items of an event recorded without items are shared and read-only")

    append = extend = insert = remove = pop = clear = sort = reverse = _refuse
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse


#: ``Pending.items`` of every event recorded without items (see :class:`_NoItems`).
NO_ITEMS: list[Any] = _NoItems()
_now = datetime.now
_UTC = timezone.utc
_current_span = trace.get_current_span
_SPAN_SOURCE = _sdk.current_span_source()
#: the current context's getter and the current-span key (``get().get(key)``: the current span or None), or
#: ``(None, "")`` when the API's runtime context is another one (then ``trace.get_current_span()``)
_context_get, _SPAN_KEY = _SPAN_SOURCE if _SPAN_SOURCE is not None else (None, "")
#: types of the values found under the span key that are ``trace.Span``\ s (``get_current_span``'s check, made
#: once per type; bounded)
_SPAN_TYPES: set[type] = set()
_INVALID_SPAN = trace.INVALID_SPAN
_RESERVED = RESERVED_DATA_KEYS
_DEFAULT_TRACE_STATE = DEFAULT_TRACE_STATE
_STR, _ID, _UNITS, _CURRENCY, _CURRENCY_RAW = Kind.STR, Kind.ID, Kind.UNITS, Kind.CURRENCY, Kind.CURRENCY_RAW
_MAX_REVENUE = COLLECTOR_MAX_REVENUE


class _TypePlan:
    """What ``build_pending`` needs of one event type, settled once: the type without ``commerce.``, its
    catalog row, whether its event id is a UUIDv5 of the entity, and the money field whose currency
    defaults to USD. Made after the type passed the checks (a type allowed once stays allowed:
    registrations are never undone)."""

    __slots__ = ("kinds", "money_currency", "once", "spec", "type")

    def __init__(self, event_type: str) -> None:
        self.type = event_type
        spec = CATALOG.get(event_type)
        self.spec = spec
        self.once = spec.once if spec is not None else False
        self.kinds = field_kinds(event_type) if spec is not None else ()
        self.money_currency = spec.money if spec is not None and spec.money and "currency" in spec.data else None


#: type as given (with or without ``commerce.``) → its plan, for types that passed the checks (bounded:
#: types made at run time beyond the bound are checked on every call, as before)
_PLANS: dict[str, _TypePlan] = {}
_PLANS_MAX = 1024


def _plan(event_type: Any, type_checked: bool) -> _TypePlan:
    """The plan of a type not in :data:`_PLANS`: checked (raises ``EventValidationError``), then made."""
    given = event_type
    if not type_checked:
        if not isinstance(event_type, str):
            raise EventValidationError(f"event type must be a string, got {type(event_type).__name__}")
        if event_type.startswith("commerce."):
            event_type = event_type[len("commerce.") :]
        subject_for(event_type)
        check_catalog_type(event_type)
    plan = _TypePlan(event_type)
    if type(given) is str and len(_PLANS) < _PLANS_MAX:
        _PLANS[given] = plan
    return plan


def build_pending(
    event_type: str,
    *,
    organization_id: str | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    data: Mapping[str, Any] | None = None,
    id: str | None = None,
    order: Order | None = None,
    idempotency_key: str | None = None,
    timestamp: datetime | None = None,
    type_checked: bool = False,
) -> Pending:
    """Validate and build the event (raises ``EventValidationError``); trace context is taken now.

    ``type_checked``: ``event_type`` is unprefixed and passed these type checks before (the decorator's
    type, once it did: a type allowed once stays allowed)."""
    plan = _PLANS.get(event_type) if type(event_type) is str else None
    if plan is None:
        plan = _plan(event_type, type_checked)
    event_type = plan.type
    spec = plan.spec
    # naive means UTC, everywhere (envelope, log record, CAPI event_time); 1970-01-01 .. 2554-07-21 in UTC only (OTLP uint64 ns)
    ts = _now(_UTC) if timestamp is None else utc(timestamp)
    payload: dict[str, Any] = {}
    items: list[Any] = NO_ITEMS
    if order is not None:
        fields = fields_from_order(order)
        fields["currency"] = fields["currency"] or "USD"
        items = copy_items(fields["items"])  # frozen: the handler keeps its own OrderItem objects
        payload = {k: fields[k] for k in (spec.data if spec else _ORDER_DATA) if k in fields}
        organization_id = organization_id or fields["organization_id"] or None
        user_id = fields["user_id"] if user_id is None else user_id
        id = order.id if id is None else id
    settings = _slot.RUNTIME.settings
    if data is not None:
        if type(data) is not dict and not isinstance(data, Mapping):
            raise EventValidationError(f"data must be a mapping, got {type(data).__name__}")
        if order is not None:
            payload.update(data)  # data adds or overrides the order's fields; frozen by the one pass below
        else:
            payload = data  # type: ignore[assignment]  # checked and frozen in one pass below
    # one pass validates, converts and freezes (later edits of the caller's data change nothing) and
    # applies the PII policy to nested containers; the top-level keys it lists wait for the checks below
    pii = settings.pii
    pii_keys: list[str] | None = None
    extra = items_size(items) if items else 0
    if pii == "keep":
        payload = check_data(
            event_type, payload, id=id, max_bytes=settings.max_event_bytes, extra_bytes=extra, freeze=True
        )
    else:
        # reserved keys first (check_reserved), then the walk's refusals: a dict's keys are checked by the
        # walk (it flags a reserved one; on a refusal, check_reserved runs first); another Mapping's now, by
        # its __iter__ (which the walk does not use)
        mapping = type(payload) is not dict
        if mapping:
            try:
                clash = not _RESERVED.isdisjoint(payload)
            except TypeError:  # an unhashable key (a custom Mapping's): check_reserved, then the walk, name it
                clash = True
            if clash:
                check_reserved(payload, event_type)  # raises when a reserved key is there
        # freeze_with_pii(payload, pii, ...), inline: one call and one tuple less per event
        walk = _FreezePii(pii == "drop")
        raw = payload
        try:
            payload = walk.top_mapping(raw)
        except _Refused as r:
            if not mapping:
                check_reserved(raw, event_type)
            raise EventValidationError(f"{_path('data', r.path)} {r.reason}") from None
        if walk.reserved:
            check_reserved(raw, event_type)  # raises
        extra += ENVELOPE_OVERHEAD
        max_bytes = settings.max_event_bytes
        if (walk.size + extra) * 6 > max_bytes:  # measured exactly without digests (raises if too large)
            freeze_data(raw, max_bytes=max_bytes, extra_bytes=extra)
        pii_keys = walk.top
        if spec is not None:
            # check_fields' common valid cases, inline (the call is a third of its cost); anything else
            # (a missing required field, a conversion, an error) goes to check_fields, which checks all
            for f, kind, req in plan.kinds:
                value: Any = payload.get(f)
                t = type(value)
                if t is str:
                    if (
                        kind is _STR
                        or (kind is _ID and value and not value.isspace())
                        or ((kind is _CURRENCY or kind is _CURRENCY_RAW) and value in _CURRENCIES)
                    ):
                        continue
                elif t is float:
                    if kind is _UNITS and 0.0 <= value < _MAX_REVENUE:  # NaN fails the comparison too
                        continue
                elif value is None and not (req and id is None):
                    continue
                check_fields(spec, payload, required=id is None, in_place=True, kinds=plan.kinds)
                break
    money = plan.money_currency
    if money is not None and money in payload and not payload.get("currency"):
        payload["currency"] = "USD"  # Go's default; GA4 needs a currency whenever value is set
    if id is None:
        if spec is not None:
            scope = {
                "user_id": user_id or "",
                "organization_id": organization_id or "",
                "session_id": session_id or "",
                **{k: v for k, v in payload.items() if v not in (None, "")},
            }
            id = entity_id(spec, scope, ts)
        else:
            id = uuid7()
    if pii_keys:
        apply_pii_top(payload, pii_keys, pii)  # our frozen copy: digests in place
    # new_event(..., data_checked=True) without its second type check (done above)
    if organization_id is None:
        organization_id = ""
    user_id = user_id or ""
    session_id = session_id or ""
    if not (  # check_ids' common case (plain ASCII strings, non-blank id and organization), inline
        type(id) is str
        and type(organization_id) is str
        and type(user_id) is str
        and type(session_id) is str
        and id.isascii()
        and organization_id.isascii()
        and user_id.isascii()
        and session_id.isascii()
        and id
        and organization_id
        and not id.isspace()
        and not organization_id.isspace()
    ) or idempotency_key is not None:
        check_ids(event_type, id, organization_id, user_id, session_id, idempotency_key)
    if idempotency_key is not None:
        event_id = event_id_for(event_type, organization_id, id, once=plan.once, idempotency_key=idempotency_key)
    else:
        event_id = once_event_id(event_type, organization_id, id) if plan.once else uuid7()
    if _context_get is not None:  # trace.get_current_span(), without three calls through the context API
        span = _context_get().get(_SPAN_KEY)
        if type(span) not in _SPAN_TYPES:
            span = _checked_span(span)
    else:
        span = _current_span()
    sc = span.get_span_context()
    if type(sc) is SpanContext:  # a tuple: (trace_id, span_id, is_remote, trace_flags, trace_state, is_valid)
        trace_id, span_id, _, flags, state, valid = sc
        if valid:  # then 0 < trace_id < 2**128 and 0 < span_id < 2**64 (the API checks): 16 and 8 bytes
            trace_hex = trace_id.to_bytes(16, "big").hex()  # = "%032x" % trace_id, 1.4 times faster
            span_hex = span_id.to_bytes(8, "big").hex()
    else:  # a subclass (another tracer's): its properties
        trace_id, span_id, flags, state, valid = sc.trace_id, sc.span_id, sc.trace_flags, sc.trace_state, sc.is_valid
        if valid:
            trace_hex = "%032x" % trace_id  # noqa: UP031  # = format(..., "032x"), 3 times faster
            span_hex = "%016x" % span_id  # noqa: UP031
    if valid:
        event = CommerceEvent(
            id,
            event_type,
            ts,
            organization_id,
            user_id,
            session_id,
            payload,
            None,
            None,
            event_id,
            trace_hex,
            span_hex,
        )
        # empty in the common case (the API's default TraceState: no __len__ call)
        trace_state = "" if state is _DEFAULT_TRACE_STATE or not state else state.to_header()
        return Pending(event, items, None, int(flags), trace_state)
    if not _trace_ids_checked:
        warn_without_tracer_provider()
    return Pending(CommerceEvent(id, event_type, ts, organization_id, user_id, session_id, payload, None, None, event_id), items)


def _checked_span(value: object) -> trace.Span:
    """What ``trace.get_current_span()`` makes of ``value`` (the context's value under the span key): it when
    a ``Span``, else ``INVALID_SPAN``; a ``Span``'s type is remembered (:data:`_SPAN_TYPES`)."""
    if value is None or not isinstance(value, trace.Span):
        return _INVALID_SPAN
    if len(_SPAN_TYPES) < 64:
        _SPAN_TYPES.add(type(value))
    return value


_trace_ids_checked = False


def warn_without_tracer_provider(provider: object | None = None) -> None:
    """Once per process: WARNING when no SDK ``TracerProvider`` is set (``provider`` or the global one).

    Called by ``configure()`` and, on the environment-only path, when the first event is recorded
    outside a valid span: without an SDK provider no span is ever valid, so events carry no trace ids.
    """
    global _trace_ids_checked
    if _trace_ids_checked:
        return
    from opentelemetry.sdk.trace import TracerProvider

    _trace_ids_checked = True  # a global SDK provider stays installed (the API sets it once)
    if isinstance(provider or trace.get_tracer_provider(), TracerProvider):
        return
    import logging

    logging.getLogger("otel_commerce").warning(
        "otel-commerce: no OpenTelemetry TracerProvider is set, so commerce events carry no trace ids. "
        "Run under opentelemetry-instrument with a traces exporter (e.g. OTEL_TRACES_EXPORTER=otlp, or "
        "=none to keep spans local), or set one first: trace.set_tracer_provider(TracerProvider()) "
        "(opentelemetry.sdk.trace)."
    )


class _LoggerCache:
    """``get_logger`` once per provider (the lookup is slower than an emit), and what an emit would reach: our
    processor when it is the only one, and how to call the processors (cached on the identity of the logger's
    processor tuple, which the provider replaces on every ``add_log_record_processor``)."""

    __slots__ = ("logger", "provider", "state")

    def __init__(self) -> None:
        self.provider: object = None
        self.logger: _logs.Logger | None = None
        #: (the processor tuple, our processor when it is the only one, how to hand a record to the processors
        #: one call level below Logger.emit (None: Logger.emit)): one object, replaced whole, so a thread that
        #: read an older tuple can never leave a newer tuple beside its older answers (two threads refreshing
        #: at once: the last one written is consistent, and the next call compares it with the logger's tuple)
        self.state: tuple[object, CommerceLogRecordProcessor | None, _sdk.DirectEmit | None] = (None, None, None)

    def processors(self) -> tuple[object, CommerceLogRecordProcessor | None, _sdk.DirectEmit | None]:
        """:attr:`state` for the logger's processors as they are now (read again when the tuple changed, or the
        logger's being enabled did: a disabled logger's tuple reads as None)."""
        logger = self.get()
        chain = _sdk.logger_processors(logger)
        state = self.state
        if chain is not state[0]:
            only = chain[0] if chain is not None and len(chain) == 1 else None
            direct = _sdk.direct_emit(logger) if chain is not None else None
            state = self.state = (
                chain,
                only if type(only) is CommerceLogRecordProcessor else None,
                direct if direct is not None and direct.chain is chain else None,
            )
        return state

    def get(self) -> _logs.Logger:
        provider = _logs.get_logger_provider()
        if provider is not self.provider or self.logger is None:
            self.logger = provider.get_logger(SCOPE_NAME, SCOPE_VERSION, schema_url=SCHEMA_URL)
            self.provider = provider
        return self.logger


_LOGGERS = _LoggerCache()


def emit_pending(pending: Pending, *, context: Context | None = None) -> None:
    """Record through OTel per the mode, and make sure the event is delivered exactly once.

    ``context``: the OTel context to record in (default: the current one) — a held event is emitted
    in the context it was recorded in (``_transaction.release``).

    - ``log``: a log record, claimed by reference by our processor/exporter during ``emit``. If none of
      ours claimed it when ``emit`` returns — a logger configuration disabled our scope, a processor
      ahead of ours raised, the provider has no processor of ours, or our exporter sits behind a batch
      processor — the event is delivered directly, counted ``via=fallback`` (never filtered away; the
      claim is atomic, so a batch exporter racing the fallback cannot deliver it twice);
    - ``span``: a span event when the current span is recording; never a log record — users choose
      this mode to keep business events out of their log pipeline. The event is delivered directly,
      also when no span is recording (sampling never loses an event);
    - ``both``: both, delivered once (by the log path);
    - ``OTEL_SDK_DISABLED=true``, or no logger provider set at all: no log record; delivered directly
      (``via=direct``, not a fallback).
    """
    event = pending.event
    assert event is not None
    rt = _slot.RUNTIME
    settings = rt.settings
    if settings.disabled:
        rt.counters["noop"] += 1
        return
    mode = settings.mode
    mask = settings.pii != "keep"
    on_span = False
    emitted = False
    if not settings.sdk_disabled:
        if mode != "log":
            span = trace.get_current_span(context)
            if span.is_recording():
                ts_ns = to_unix_ns(event.timestamp)  # exact to the microsecond (no float rounding)
                on_span = True
                body = envelope_body(event, pending.items, mask=mask)
                span_attrs = {
                    **flat_attributes(event, mask=mask),
                    "commerce.payload": orjson.dumps(body).decode(),
                    "commerce.mode": mode,
                }
                span.add_event("commerce." + event.type, attributes=span_attrs, timestamp=ts_ns)
                # Delivered now, not when the span ends: a span that never ends (or ends after exit) must
                # not lose a business event. CommerceSpanExporter skips span events with commerce.mode.
        if mode != "span" and _sdk.installed_logger_provider() is not None:  # else no pipeline: direct
            _, sole, direct = _LOGGERS.processors()
            if sole is not None and sole.acting:
                # Only our processor would see a log record: build none (nobody would read it) and hand
                # the event over as its on_emit would. A processor added later gets records again.
                rt.counters["recorded"] += 1
                if sole.take(pending):
                    _metrics.add_one(_RECORDED_OTEL)
                return
            ts_ns = to_unix_ns(event.timestamp)
            data_copy = None
            if context is None and settings.log_body != "envelope":
                # the record's own copy of the data, made by orjson (the event's data is the wire's JSON):
                # the SDK's cleaning is not needed on it (_sdk.emit_record(copied=True))
                data_copy = _sdk.json_copy(event.data)
            if data_copy is not None:
                attributes = flat_attributes(event, mask=mask)
                attributes["commerce.data"] = data_copy
                if pending.items:
                    attributes["commerce.items"] = [i.to_dict() for i in pending.items]  # new dicts of scalars
                if _context_get is not None:  # the current context and span, as build_pending reads them
                    current = _context_get()
                    span = current.get(_SPAN_KEY)
                    if type(span) not in _SPAN_TYPES:
                        span = _checked_span(span)
                    record = _sdk.info_log_record(
                        CommerceLogRecord, ts_ns, "commerce." + event.type, attributes, current, span.get_span_context()
                    )
                else:
                    record = _sdk.info_log_record(CommerceLogRecord, ts_ns, "commerce." + event.type, attributes)
            else:
                log_body: dict[str, Any] | None = None
                if settings.log_body == "envelope":
                    log_body = envelope_body(event, pending.items, mask=mask)
                    # the record's own copy (the SDK copies the attributes, never the body): a processor that
                    # edits the body in place changes its record, never the event delivered
                    log_body["data"] = copy_mapping(event.data)
                record = CommerceLogRecord(
                    timestamp=ts_ns,
                    body=log_body,
                    attributes=event_attributes(event, pending.items, mask=mask),
                    event_name="commerce." + event.type,
                    severity_number=SeverityNumber.INFO,
                    severity_text="INFO",
                    context=context,
                )
            record.commerce_pending = pending
            emitted = True
            try:
                if data_copy is not None and direct is not None and len(attributes) <= direct.maxlen:
                    _sdk.emit_direct(direct, record)  # the processors called as Logger.emit calls them
                else:
                    _sdk.emit_record(_LOGGERS.get(), record, copied=data_copy is not None)
            except Exception as exc:  # a processor ahead of ours raised: the event still goes out below
                rt.report_error(exc, pending)
    rt.counters["recorded"] += 1
    if emitted:
        if pending.claimed or not pending.claim("fallback"):  # claimed is never reset: no lock to read it
            _metrics.add_one(_RECORDED_OTEL)  # one of our processors/exporters took it
            return
        rt.counters["fallback"] += 1
        _metrics.count("recorded", via="fallback")
        _warn_fallback()
    elif pending.claim("span" if on_span else "direct"):
        _metrics.count("recorded", via="direct")
    else:  # pragma: no cover - nothing else can hold a Pending that was never emitted
        return
    rt.deliver(pending)


_RECORDED_OTEL = _metrics.count_key("recorded", via="otel")
_fallback_warned = False


def _warn_fallback() -> None:
    """Once per process: our events bypass the OTel pipeline (a notice, not a loss)."""
    global _fallback_warned
    if _fallback_warned:
        return
    _fallback_warned = True
    import logging

    logging.getLogger("otel_commerce").warning(
        "otel-commerce: a commerce.* log record was not taken by our processor during emit (a logger "
        "configuration disabling the otel_commerce scope, a processor ahead of ours that raised, a provider "
        "without CommerceLogRecordProcessor, or CommerceLogExporter behind a batch processor); such events "
        "are delivered directly, counted via=fallback. configure() or the commerce instrumentor adds our processor."
    )


def record_event(
    event_type: str,
    *,
    organization_id: str | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    data: Mapping[str, Any] | None = None,
    id: str | None = None,
    order: Order | None = None,
    idempotency_key: str | None = None,
    timestamp: datetime | None = None,
    on_commit: object = None,
) -> str:
    """Record one commerce event in the current trace context and return its ``event_id``.

    ``event_type`` is a catalog type (``"order.completed"``) or a custom one (``"loyalty.points_earned"``,
    delivered on ``commerce.<type>`` without GA4/Meta blocks). ``order=`` maps an ``Order`` like the
    order helpers do; ``data`` adds or overrides fields. ``id`` defaults to the catalog's id rule
    (e.g. the order id). Bad input raises :class:`EventValidationError` here; delivery never raises.
    ``on_commit``: deliver only if the database transaction commits (README "Transactions"): ``True``
    (the bound session / Django atomic block in progress here), a session, ``False``, or None (default:
    ``OTEL_COMMERCE_ON_COMMIT``). Inside ``with otel_commerce.transaction():`` the event is held too.
    """
    holder = holder_for(on_commit)
    pending = build_pending(
        event_type,
        organization_id=organization_id,
        user_id=user_id,
        session_id=session_id,
        data=data,
        id=id,
        order=order,
        idempotency_key=idempotency_key,
        timestamp=timestamp,
    )
    try:
        if holder is None:
            emit_pending(pending)  # what hold() does without a holder
        else:
            hold(pending, holder)
    except Exception as exc:  # telemetry never raises into the caller
        _slot.RUNTIME.report_error(exc, pending)
    assert pending.event is not None
    return pending.event.event_id
