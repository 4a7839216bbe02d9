"""Messaging spans for our own JetStream I/O (``OTEL_COMMERCE_SELF_TRACING=on``; off by default).

One PRODUCER ``send`` span per batch of at most :data:`MAX_BATCH` messages, following the messaging
semantic conventions: ``messaging.system="nats"`` (no registered value exists yet),
``messaging.operation.type="send"``, a link to each message's recorded context (its ``traceparent``
header: the span the event was recorded in), ``messaging.batch.message_count`` on batches of two or
more, ``messaging.destination.name`` only when every message of the batch has the same subject, and
``messaging.message.id`` (``Nats-Msg-Id`` = ``event_id``) only on single-message sends. The spans are
roots (the delivery thread has no context) and carry no ``commerce.*`` events, so none of our exporters
ever delivers them; they go wherever the application's ``TracerProvider`` sends spans.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from .._scope import SCHEMA_URL, SCOPE_NAME, SCOPE_VERSION

__all__ = ["MAX_BATCH", "enabled", "message_headers", "send_attributes", "start_send_spans"]

#: Messages per ``send`` span at most (links per span stay well under the SDK's default limit of 128).
MAX_BATCH = 128
_ENV = "OTEL_COMMERCE_SELF_TRACING"


def enabled() -> bool:
    """``OTEL_COMMERCE_SELF_TRACING`` is ``on`` / ``true`` / ``1`` (read at every send: cheap, and switchable)."""
    return os.environ.get(_ENV, "").strip().lower() in ("on", "true", "1")


def message_headers(message: tuple[Any, ...]) -> dict[str, str]:
    """The headers of a prepared message: its ``headers`` dict, else read back from its header block
    (``(subject, payload, None, wire_size, b"NATS/1.0\\r\\nk: v\\r\\n...\\r\\n")``: the sink keeps no dict)."""
    if message[2] is not None:
        return dict(message[2])
    out: dict[str, str] = {}
    if len(message) > 4 and message[4]:
        for line in bytes(message[4]).decode("utf-8", "replace").split("\r\n")[1:]:
            key, sep, value = line.partition(": ")
            if sep:
                out[key] = value
    return out


def send_attributes(messages: Sequence[tuple[Any, ...]]) -> dict[str, Any]:
    """The attributes of one ``send`` span for ``messages`` (``(subject, payload, headers, ...)`` each, ≥ 1)."""
    attrs: dict[str, Any] = {"messaging.system": "nats", "messaging.operation.type": "send"}
    subjects = {message[0] for message in messages}
    if len(subjects) == 1:
        attrs["messaging.destination.name"] = next(iter(subjects))
    if len(messages) == 1:
        msg_id = message_headers(messages[0]).get("Nats-Msg-Id")
        if msg_id:
            attrs["messaging.message.id"] = msg_id
    else:
        attrs["messaging.batch.message_count"] = len(messages)
    return attrs


def _links(messages: Sequence[tuple[Any, ...]]) -> list[Link]:
    links = []
    for message in messages:
        sc = trace.get_current_span(propagate.extract(message_headers(message))).get_span_context()
        if sc.is_valid:
            links.append(Link(sc))
    return links


def start_send_spans(items: Sequence[Any]) -> Callable[[Sequence[Any]], None] | None:
    """Start the ``send`` spans for a JetStream batch; returns ``finish(results)`` (None when disabled).

    ``items`` are the sink's prepared ``(subject, payload, headers, wire_size)`` tuples; ``finish`` takes the sink's
    per-message outcomes (None = delivered) and ends each span, with an ERROR status when any of its
    messages failed. Never raises: self-telemetry must not break delivery.
    """
    if not items or not enabled():
        return None
    try:
        tracer = trace.get_tracer(SCOPE_NAME, SCOPE_VERSION, schema_url=SCHEMA_URL)
        spans = []
        for start in range(0, len(items), MAX_BATCH):
            chunk = items[start : start + MAX_BATCH]
            attrs = send_attributes(chunk)
            name = f"send {attrs['messaging.destination.name']}" if "messaging.destination.name" in attrs else "send"
            span = tracer.start_span(
                name, context=trace.set_span_in_context(trace.INVALID_SPAN), kind=SpanKind.PRODUCER,
                attributes=attrs, links=_links(chunk),
            )  # fmt: skip
            spans.append((start, len(chunk), span))
    except Exception:  # pragma: no cover - a broken tracer never stops delivery
        return None

    def finish(results: Sequence[Any]) -> None:
        for start, count, span in spans:
            try:
                failed = [r for r in results[start : start + count] if r is not None]
                if failed:
                    span.set_status(Status(StatusCode.ERROR, f"{len(failed)} of {count} not delivered"))
                span.end()
            except Exception:  # pragma: no cover
                pass

    return finish
