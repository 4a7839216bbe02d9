"""W3C trace context for NATS headers and the envelope's ``trace_id`` / ``span_id``.

(``headers_for_ids``, used by the delivery thread, lives with the NATS helpers in ``_sinks``.)
"""

from __future__ import annotations

from opentelemetry import propagate, trace
from opentelemetry.context import Context

__all__ = ["current_ids", "inject_headers"]

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

