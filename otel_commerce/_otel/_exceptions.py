"""An exception on a span we opened, without PII: message and stack trace scrubbed (``[email]``, ``[ip]``,
``[phone]``) unless ``OTEL_COMMERCE_PII=keep``.

The SDK's own ``record_exception`` / ``set_status_on_exception`` copy the raw exception text into the span
(and so to every span exporter); spans we open — the decorator's ``span=True`` and the consumer helper's
``process`` span — are started with both off and record the exception through :func:`record_exception`.
"""

from __future__ import annotations

import logging
import traceback

from opentelemetry import trace

from .._model._scrub import scrub_text
from . import _slot

__all__ = ["record_exception"]

logger = logging.getLogger("otel_commerce")


def record_exception(span: trace.Span, exc: BaseException) -> None:
    """Record ``exc`` on ``span`` (an ``exception`` event, ERROR status) under the PII policy; never raises."""
    try:
        if _slot.RUNTIME.settings.pii == "keep":
            span.record_exception(exc, escaped=True)
            span.set_status(trace.Status(trace.StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            return
        message = scrub_text(str(exc))
        stacktrace = scrub_text("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        span.record_exception(
            exc, attributes={"exception.message": message, "exception.stacktrace": stacktrace}, escaped=True
        )
        span.set_status(trace.Status(trace.StatusCode.ERROR, f"{type(exc).__name__}: {message}"))
    except Exception:  # telemetry never raises into the caller
        logger.debug("otel-commerce: recording an exception on the span failed", exc_info=True)
