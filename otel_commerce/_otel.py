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
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import orjson
from opentelemetry.sdk._logs import LogRecordProcessor, ReadableLogRecord, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from . import _exit
from ._catalog import CATALOG
from ._delivery._pending import Pending
from ._identity import event_id_for
from ._model import CommerceEvent, OrderItem, parse_timestamp
from ._runtime import RUNTIME

if TYPE_CHECKING:
    from opentelemetry._logs import LogRecord

    from ._delivery import DeliveryEngine

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
    left = _exit.remaining()
    if left is None and _exit.interpreter_exiting():
        _exit.begin("OTel SDK shutdown at exit")
        left = _exit.remaining()
    return _exit.exit_timeout() if left is None else left


def _flush_budget(timeout_millis: int) -> float:
    left = _exit.remaining()
    seconds = timeout_millis / 1000
    return seconds if left is None else min(seconds, left)


def _hex(value: int | None, width: int) -> str:
    return format(value, f"0{width}x") if value else ""


def _ts(ts_ns: int | None) -> datetime:
    return datetime.fromtimestamp((ts_ns or time.time_ns()) / 1e9, tz=timezone.utc)


def pending_from_body(
    name: str,
    body: Any,
    attributes: Mapping[str, Any] | None,
    trace_id: str,
    span_id: str,
    trace_flags: int,
    ts_ns: int | None = None,
) -> Pending:
    """Rebuild an event from a log-record body / span-event payload (or, failing that, its attributes)."""
    attrs = attributes or {}
    if not isinstance(body, Mapping):
        body = {
            "id": attrs.get("commerce.id", ""),
            "type": attrs.get("commerce.type", name[len(_PREFIX) :]),
            "organization_id": attrs.get("commerce.organization_id", ""),
            "event_id": attrs.get("commerce.event_id", ""),
            "data": {},
        }
    type_ = str(body.get("type") or name[len(_PREFIX) :])
    ts = body.get("timestamp")
    event = CommerceEvent(
        id=str(body.get("id", "")),
        type=type_,
        timestamp=parse_timestamp(ts) if isinstance(ts, str) else _ts(ts_ns),
        organization_id=str(body.get("organization_id", "")),
        user_id=str(body.get("user_id") or ""),
        session_id=str(body.get("session_id") or ""),
        data=dict(body.get("data") or {}),
        event_id=str(body.get("event_id") or ""),
        trace_id=trace_id,
        span_id=span_id,
    )
    if not event.event_id:
        spec = CATALOG.get(type_)
        # without an entity id a deterministic id would merge unrelated events: use a fresh one
        event.event_id = event_id_for(type_, event.id, once=bool(spec and spec.once and event.id))
    items = [OrderItem.from_dict(i) for i in body.get("items") or () if isinstance(i, Mapping)]
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
                RUNTIME.deliver(pending)
        except Exception as exc:
            RUNTIME.report_error(exc, pending)

    def _flush(self, timeout_seconds: float | None) -> bool:
        try:
            if self._engine is not None:
                return self._engine.flush(timeout_seconds)
            return RUNTIME.flush(timeout_seconds)
        except Exception as exc:
            RUNTIME.report_error(exc, None)
            return False


class CommerceLogRecordProcessor(_Deliverer, LogRecordProcessor):
    """The fast path: ``commerce.*`` log records go straight to the delivery engine from ``on_emit``.

    Add it to a ``LoggerProvider`` (``configure()`` and the ``commerce`` configurator do). With no
    ``engine`` argument it uses the process-wide engine built from the environment / ``configure()``.
    """

    def __init__(self, engine: DeliveryEngine | None = None) -> None:
        super().__init__(engine)
        if engine is None:
            # Built where the pipeline is set up (the main thread, for opentelemetry-instrument), so the
            # process hooks (SIGTERM...) are installed there rather than in the first request's thread.
            try:
                RUNTIME.engine  # noqa: B018
            except Exception:  # pragma: no cover - never break the SDK's set-up
                logger.debug("otel-commerce: building the engine early failed", exc_info=True)

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        record = log_record.log_record
        if not (record.event_name or "").startswith(_PREFIX):
            return
        try:
            pending = _pending_from_log_record(record)
        except Exception as exc:
            RUNTIME.report_error(exc, None)
            return
        if pending is None or pending.claimed:
            return  # another processor/exporter of ours already took it: never twice
        pending.claimed = True
        pending.via = "processor"
        self._deliver(pending)

    def shutdown(self) -> None:
        self._flush(_shutdown_budget())

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._flush(_flush_budget(timeout_millis))


class CommerceLogExporter(_Deliverer, LogRecordExporter):
    """A ``LogRecordExporter`` for the SDK's ``BatchLogRecordProcessor`` (``OTEL_LOGS_EXPORTER=commerce``).

    Prefer the processor: the batch processor adds a second queue that drops the oldest records when
    full. When this exporter is alive, ``record_event`` leaves delivery to it.
    """

    def __init__(self, engine: DeliveryEngine | None = None) -> None:
        super().__init__(engine)
        self._live = True
        RUNTIME.log_exporters += 1

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        for item in batch:
            try:
                pending = _pending_from_log_record(item.log_record)
            except Exception as exc:
                RUNTIME.report_error(exc, None)
                continue
            if pending is not None and not pending.claimed:  # the batch processor copies the record,
                pending.claimed = True  # but the Pending it carries is shared: claims are seen
                pending.via = "log_exporter"
                self._deliver(pending)
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        self._flush(_shutdown_budget())
        if self._live:
            self._live = False
            RUNTIME.log_exporters -= 1

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
                    RUNTIME.report_error(exc, None)
                    continue
                pending.via = "span_exporter"
                self._deliver(pending)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._flush(_shutdown_budget())

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._flush(_flush_budget(timeout_millis))
