"""An asyncio COMMERCE consumer: a durable pull consumer whose processing spans continue the producers' traces.

For each message, ``otel_commerce.consume_span(msg)`` opens a CONSUMER span that is a child of (and
linked to) the span that recorded the event, so the consumer's work shows up in the same trace. The
message is acknowledged after processing; a restarted consumer with the same ``--durable`` name resumes
where it stopped. One line per event::

    order.completed  id=ord-1  trace_id=4bf92f3577b34da6a3ce929d0e0e4736  span_id=...  parent_span_id=...

    python examples/consumer.py --nats-url nats://127.0.0.1:4222 --durable analytics --max 100 --timeout 60

Stops after ``--max`` events, after ``--timeout`` seconds, after ``--idle`` seconds without a message,
or on Ctrl-C — whichever comes first (without any of them it runs until Ctrl-C).
"""

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

import nats
from nats.errors import TimeoutError as NatsTimeoutError
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

import otel_commerce

STREAM = otel_commerce.STREAM_NAME
revenue_by_currency: dict[str, float] = {}


def process(envelope: dict[str, Any]) -> None:
    """The business side: here, a running revenue total of completed orders."""
    if envelope.get("type") == "order.completed":
        data = envelope.get("data") or {}
        currency = str(data.get("currency") or "USD")
        revenue_by_currency[currency] = revenue_by_currency.get(currency, 0.0) + float(data.get("revenue") or 0.0)


async def consume(
    nats_url: str, durable: str, subject: str, max_events: int | None, timeout: float | None, idle: float | None
) -> int:
    """Fetch, process (in a span continuing the producer's trace) and ack; returns the number processed."""
    tracer = trace.get_tracer("commerce-consumer")
    nc = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=5)
    try:
        js = nc.jetstream()
        await otel_commerce.bootstrap(js)  # creates COMMERCE when missing (never changes an existing stream)
        sub = await js.pull_subscribe(subject, durable=durable, stream=STREAM)
        deadline = None if timeout is None else time.monotonic() + timeout
        last_message = time.monotonic()
        count = 0
        while max_events is None or count < max_events:
            now = time.monotonic()
            waits = [5.0]
            if deadline is not None:
                waits.append(deadline - now)
            if idle is not None:
                waits.append(last_message + idle - now)
            wait = min(waits)
            if wait <= 0:
                break
            batch = 10 if max_events is None else min(10, max_events - count)
            try:
                msgs = await sub.fetch(batch, timeout=wait)
            except (NatsTimeoutError, asyncio.TimeoutError):  # nats-py's fetch raises either when nothing came
                continue  # nothing yet: the next round checks the deadline and the idle time
            last_message = time.monotonic()
            for msg in msgs:
                envelope = json.loads(msg.data)
                with otel_commerce.consume_span(msg, tracer=tracer) as span:
                    process(envelope)
                    print_line(envelope, span)
                await msg.ack()
                count += 1
        return count
    finally:
        await nc.close()


def print_line(envelope: dict[str, Any], span: Any) -> None:
    sc = span.get_span_context()
    parent = span.parent if isinstance(span, ReadableSpan) else None
    print(
        f"{envelope.get('type', '?'):<18} id={envelope.get('id', '')}  trace_id={sc.trace_id:032x}  "
        f"span_id={sc.span_id:016x}  parent_span_id={f'{parent.span_id:016x}' if parent else '-'}  "
        f"event_id={envelope.get('event_id', '')}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description="Consume COMMERCE events, continuing each producer's trace.")
    parser.add_argument(
        "--nats-url",
        default=os.environ.get("OTEL_COMMERCE_NATS_URL") or os.environ.get("PUBSUB_URL") or "nats://127.0.0.1:4222",
    )
    parser.add_argument("--durable", default="commerce-example", help="durable consumer name (progress is kept)")
    parser.add_argument("--subject", default="commerce.>", help="filter, e.g. commerce.order.*")
    parser.add_argument("--max", type=int, dest="max_events", help="stop after this many events")
    parser.add_argument("--timeout", type=float, help="stop after this many seconds")
    parser.add_argument("--idle", type=float, help="stop after this many seconds without a message")
    args = parser.parse_args()

    if not isinstance(trace.get_tracer_provider(), TracerProvider):  # not under opentelemetry-instrument
        trace.set_tracer_provider(TracerProvider(resource=Resource.create({"service.name": "commerce-consumer"})))
    try:
        count = asyncio.run(
            consume(args.nats_url, args.durable, args.subject, args.max_events, args.timeout, args.idle)
        )
    except KeyboardInterrupt:
        return 130
    print(f"processed {count} event(s); completed revenue: {revenue_by_currency or {}}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
