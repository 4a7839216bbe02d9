"""W3C trace context for NATS headers and the envelope's ``trace_id`` / ``span_id``."""

from __future__ import annotations

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

__all__ = ["current_ids", "headers_for_ids", "inject_headers"]


def current_ids(context: Context | None = None) -> tuple[str, str, int]:
    """``(trace_id 32-hex, span_id 16-hex, trace_flags)`` of the current span, ``("", "", 0)`` if none."""
    sc = trace.get_current_span(context).get_span_context()
    if not sc.is_valid:
        return "", "", 0
    return format(sc.trace_id, "032x"), format(sc.span_id, "016x"), int(sc.trace_flags)


def inject_headers(headers: dict[str, str], context: Context | None = None) -> dict[str, str]:
    """Add ``traceparent`` / ``tracestate`` (global propagator) of ``context`` to ``headers``."""
    propagate.inject(headers, context=context)
    return headers


def headers_for_ids(
    headers: dict[str, str], trace_id: str, span_id: str, trace_flags: int = 1, trace_state: str = ""
) -> dict[str, str]:
    """Add the trace context of a recorded event (known only by its ids) to ``headers``."""
    if not trace_id or not span_id:
        return headers
    try:
        sc = SpanContext(
            trace_id=int(trace_id, 16),
            span_id=int(span_id, 16),
            is_remote=True,
            trace_flags=TraceFlags(trace_flags),
            trace_state=TraceState.from_header([trace_state]) if trace_state else TraceState(),
        )
    except ValueError:
        return headers
    ctx = trace.set_span_in_context(NonRecordingSpan(sc))
    propagate.inject(headers, context=ctx)
    return headers
