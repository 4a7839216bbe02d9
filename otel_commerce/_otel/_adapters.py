"""OTel SDK adapters: the direct log-record processor and the two exporters.

- ``CommerceLogRecordProcessor``: ``on_emit`` keeps ``commerce.*`` records and hands them straight to
  the delivery engine (no second queue). ``shutdown`` (run by the SDK at exit) flushes the engine.
- ``CommerceLogExporter``: a ``LogRecordExporter`` for the SDK's ``BatchLogRecordProcessor``.
- ``CommerceSpanExporter``: pulls ``commerce.*`` span events out of finished spans, ignores the rest,
  so it sits beside the OTLP span exporter.
All three build ``CommerceEvent``s with ``trace_id`` (32 hex) / ``span_id`` (16 hex).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .._model import CATALOG, CommerceEvent, OrderItem, Pending, event_id_for, parse_timestamp
from .._model._time import from_unix_ns
from . import _slot
from ._sdk import LogRecordExporter, LogRecordExportResult, LogRecordProcessor, ReadableLogRecord, ReadWriteLogRecord
from ._shape import envelope_from_record

if TYPE_CHECKING:
    from opentelemetry._logs import LogRecord

    from .._delivery import DeliveryEngine

__all__ = [
    "CommerceLogExporter",
    "CommerceLogRecordProcessor",
    "CommerceSpanExporter",
    "pending_from_body",
]

logger = logging.getLogger("otel_commerce")
_PREFIX = "commerce."


def _shutdown_budget() -> float:
    """Seconds a processor/exporter ``shutdown`` may wait: what is left of the exit deadline.

    The SDK's own atexit hook calling ``shutdown`` is an exit path: it starts the deadline when it is
    the first. A ``provider.shutdown()`` while the process runs gets one exit budget of its own.
    """
    return _slot.RUNTIME.exit_budget(None)


def _flush_budget(timeout_millis: int) -> float:
    return _slot.RUNTIME.exit_budget(timeout_millis / 1000)


def _hex(value: int | None, width: int) -> str:
    return format(value, f"0{width}x") if value else ""


def _ts(ts_ns: int | None) -> datetime:
    return from_unix_ns(ts_ns or time.time_ns())


_LENGTH_LIMIT_VARS = (
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",  # cuts the commerce.payload JSON of span events
)
_limit_warned = False


def _warn_if_length_limit() -> None:
    """Once per process: an event rebuilt from a record may have had strings cut by the SDK's limits."""
    global _limit_warned
    if _limit_warned:
        return
    limits = {v: os.environ[v] for v in _LENGTH_LIMIT_VARS if os.environ.get(v, "").strip()}
    if limits:
        _limit_warned = True
        logger.warning(
            "otel-commerce: an event was rebuilt from a log record while %s is set: the SDK may have "
            "truncated its strings. Our processor (configure(), the commerce instrumentor) delivers "
            "the original event instead.",
            ", ".join(f"{k}={v}" for k, v in limits.items()),
        )


def pending_from_body(
    name: str,
    body: Any,
    attributes: Mapping[str, Any] | None,
    trace_id: str,
    span_id: str,
    trace_flags: int,
    ts_ns: int | None = None,
) -> Pending:
    """Rebuild an event from a log record (either shape, see :func:`envelope_from_record`) or span-event payload."""
    _warn_if_length_limit()
    env = envelope_from_record(name, body, attributes)
    type_ = str(env.get("type") or name[len(_PREFIX) :])
    ts = env.get("timestamp")
    event = CommerceEvent(
        id=str(env.get("id", "")),
        type=type_,
        timestamp=parse_timestamp(ts) if isinstance(ts, str) else _ts(ts_ns),
        organization_id=str(env.get("organization_id", "")),
        user_id=str(env.get("user_id") or ""),
        session_id=str(env.get("session_id") or ""),
        data=dict(env.get("data") or {}),
        event_id=str(env.get("event_id") or ""),
        trace_id=trace_id,
        span_id=span_id,
    )
    if not event.event_id:
        spec = CATALOG.get(type_)
        # without an entity id a deterministic id would merge unrelated events: use a fresh one
        event.event_id = event_id_for(
            type_, event.organization_id, event.id, once=bool(spec and spec.once and event.id)
        )
    items = [OrderItem.from_dict(i) for i in env.get("items") or () if isinstance(i, Mapping)]
    return Pending(event=event, items=items, trace_flags=trace_flags)


def _pending_from_log_record(record: LogRecord) -> Pending | None:
    name = record.event_name or ""
    if not name.startswith(_PREFIX):
        return None
    pending = getattr(record, "commerce_pending", None)
    if isinstance(pending, Pending):
        return pending
    return pending_from_body(
        name,
        record.body,
        record.attributes,
        _hex(record.trace_id, 32),
        _hex(record.span_id, 16),
        int(record.trace_flags or 0),
        record.timestamp or record.observed_timestamp,
    )


class _Deliverer:
    """Shared by the three adapters: an explicit engine, or the process-wide runtime."""

    def __init__(self, engine: DeliveryEngine | None) -> None:
        self._engine = engine

    def _deliver(self, pending: Pending) -> None:
        try:
            if self._engine is not None:
                self._engine.submit(pending)
            else:
                _slot.RUNTIME.deliver(pending)
        except Exception as exc:
            _slot.RUNTIME.report_error(exc, pending)

    def _flush(self, timeout_seconds: float | None) -> bool:
        try:
            if self._engine is not None:
                return self._engine.flush(timeout_seconds)
            return _slot.RUNTIME.flush(timeout_seconds)
        except Exception as exc:
            _slot.RUNTIME.report_error(exc, None)
            return False


class CommerceLogRecordProcessor(_Deliverer, LogRecordProcessor):
    """The fast path: ``commerce.*`` log records go straight to the delivery engine from ``on_emit``.

    Add it to a ``LoggerProvider`` (``configure()`` and the ``commerce`` instrumentor do). With no
    ``engine`` argument it uses the process-wide engine built from the environment / ``configure()``.
    """

    def __init__(self, engine: DeliveryEngine | None = None) -> None:
        super().__init__(engine)
        #: False: the processor stays on its provider (the SDK cannot remove one) but takes nothing;
        #: ``record_event``'s fallback then delivers our events (``CommerceInstrumentor().uninstrument()``).
        self.acting = True

    def take(self, pending: Pending) -> bool:
        """Claim and deliver ``pending`` as :meth:`on_emit` does for a record carrying it (True when taken).

        ``record_event``'s fast path when this processor is the only one on the provider: no SDK log
        record is built for nobody to read.
        """
        if self.acting and pending.claim("processor"):
            self._deliver(pending)
            return True
        return False

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        if not self.acting:
            return
        record = log_record.log_record
        pending = getattr(record, "commerce_pending", None)
        if type(pending) is Pending:  # record_event's record: the event it carries (its name is commerce.*)
            if pending.claim("processor"):  # False: already taken, never twice
                self._deliver(pending)
            return
        if not (record.event_name or "").startswith(_PREFIX):
            return
        try:
            pending = _pending_from_log_record(record)
        except Exception as exc:
            _slot.RUNTIME.report_error(exc, None)
            return
        if pending is not None and pending.claim("processor"):  # False: already taken, never twice
            self._deliver(pending)

    def shutdown(self) -> None:
        self._flush(_shutdown_budget())

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._flush(_flush_budget(timeout_millis))


class CommerceLogExporter(_Deliverer, LogRecordExporter):
    """A ``LogRecordExporter`` (``OTEL_LOGS_EXPORTER=commerce``, or ``commerce:`` in an ``OTEL_CONFIG_FILE``).

    Behind a ``SimpleLogRecordProcessor`` it takes each record during ``emit`` (its export only
    enqueues). Behind a batch processor ``record_event``'s fallback usually takes our events first;
    this exporter then delivers the ``commerce.*`` records other code emits.

    ``settings``: ``OTEL_COMMERCE_*`` settings as keyword arguments (``nats_url``, ``collector_endpoint``,
    ``mode``, ``pii``, ``batch_size``…, see ``Settings``), as a declarative configuration file passes
    them; when given, they configure the process-wide delivery (like ``configure()`` without touching
    any provider). Invalid ones raise ``ConfigurationError``. Not combinable with ``engine``.
    """

    def __init__(self, engine: DeliveryEngine | None = None, **settings: Any) -> None:
        super().__init__(engine)
        if settings:
            if engine is not None:
                from .._errors import ConfigurationError

                raise ConfigurationError("CommerceLogExporter: pass either engine or settings, not both")
            _slot.RUNTIME.apply_settings(settings)
        self._live = True
        _slot.RUNTIME.log_exporters += 1

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        for item in batch:
            try:
                pending = _pending_from_log_record(item.log_record)
            except Exception as exc:
                _slot.RUNTIME.report_error(exc, None)
                continue
            # the batch processor copies the record, but the Pending it carries is shared: claims are seen
            if pending is not None and pending.claim("log_exporter"):
                self._deliver(pending)
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        self._flush(_shutdown_budget())
        if self._live:
            self._live = False
            _slot.RUNTIME.log_exporters -= 1

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._flush(_flush_budget(timeout_millis))


class CommerceSpanExporter(_Deliverer, SpanExporter):
    """Delivers the ``commerce.*`` span events of finished spans; every other span is ignored.

    Span events written by ``record_event`` / ``@commerce_event`` (they carry ``commerce.mode``) are
    skipped: those are delivered when recorded, so that a span that never ends loses nothing. This
    exporter delivers span events other code adds in the same format (``commerce.payload``).
    """

    def __init__(self, engine: DeliveryEngine | None = None) -> None:
        super().__init__(engine)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            ctx = span.context
            for ev in span.events:
                if not ev.name.startswith(_PREFIX):
                    continue
                attrs = ev.attributes or {}
                if "commerce.mode" in attrs:
                    continue  # recorded by record_event, which already delivered it
                try:
                    raw = attrs.get("commerce.payload")
                    body = orjson.loads(raw) if isinstance(raw, str) else None
                    pending = pending_from_body(
                        ev.name,
                        body,
                        attrs,
                        _hex(ctx.trace_id if ctx else 0, 32),
                        _hex(ctx.span_id if ctx else 0, 16),
                        int(ctx.trace_flags) if ctx else 0,
                        ev.timestamp,
                    )
                except Exception as exc:
                    _slot.RUNTIME.report_error(exc, None)
                    continue
                pending.via = "span_exporter"
                self._deliver(pending)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._flush(_shutdown_budget())

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._flush(_flush_budget(timeout_millis))
