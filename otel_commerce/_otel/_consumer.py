"""Consumer side of the trace: continue a COMMERCE message's trace in the code that processes it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Tracer

from .._scope import SCHEMA_URL, SCOPE_NAME, SCOPE_VERSION
from ._exceptions import record_exception

__all__ = ["consume_span", "extract_context"]


def _headers(msg: Any) -> Mapping[str, str]:
    headers = msg if isinstance(msg, Mapping) else getattr(msg, "headers", None)
    return headers or {}


def extract_context(msg: Any) -> Context:
    """The producer's context from a nats-py message (or a headers mapping): ``traceparent``/``tracestate``."""
    return propagate.extract(dict(_headers(msg)))


@contextmanager
def consume_span(
    msg: Any, *, tracer: Tracer | None = None, name: str | None = None, attributes: Mapping[str, Any] | None = None
) -> Iterator[Span]:
    """Start a CONSUMER span that continues (child of, and linked to) the producer's trace.

    Attributes follow the messaging conventions: ``messaging.system="nats"``,
    ``messaging.destination.name`` (the subject), ``messaging.operation.type="process"``, plus
    ``messaging.message.id`` (the ``Nats-Msg-Id``, which is the envelope's ``event_id``). An exception
    raised in the block is recorded on the span with its text scrubbed of e-mail / IP / phone (unless
    ``OTEL_COMMERCE_PII=keep``) and re-raised.
    """
    ctx = extract_context(msg)
    producer = trace.get_current_span(ctx).get_span_context()
    subject = str(getattr(msg, "subject", "") or "")
    attrs: dict[str, Any] = {
        "messaging.system": "nats",
        "messaging.destination.name": subject,
        "messaging.operation.type": "process",
    }
    msg_id = _headers(msg).get("Nats-Msg-Id")
    if msg_id:
        attrs["messaging.message.id"] = msg_id
        attrs["commerce.event_id"] = msg_id
    attrs.update(attributes or {})
    tracer = tracer or trace.get_tracer(SCOPE_NAME, SCOPE_VERSION, schema_url=SCHEMA_URL)
    links = [Link(producer)] if producer.is_valid else []
    with tracer.start_as_current_span(
        name or f"process {subject}",
        context=ctx,
        kind=SpanKind.CONSUMER,
        links=links,
        attributes=attrs,
        record_exception=False,  # the SDK would copy the raw exception text: we record it scrubbed
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except Exception as exc:
            record_exception(span, exc)
            raise
