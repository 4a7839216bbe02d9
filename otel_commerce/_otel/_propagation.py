"""W3C trace context for NATS headers and the envelope's ``trace_id`` / ``span_id``."""

from __future__ import annotations

from opentelemetry import propagate, trace
from opentelemetry.context import Context

__all__ = ["current_ids", "headers_for_ids", "inject_headers"]

_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


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
    """Add the W3C ``traceparent`` (and ``tracestate``) of a recorded event, known by its ids.

    Formatted directly (the delivery thread does this for every message; the propagator API costs
    ~15x more); the ids were produced by the OTel SDK, so they are valid hex of the right length.
    """
    if len(trace_id) != 32 or len(span_id) != 16 or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return headers
    headers["traceparent"] = f"00-{trace_id}-{span_id}-{trace_flags & 0xFF:02x}"
    if trace_state:
        headers["tracestate"] = trace_state
    return headers
