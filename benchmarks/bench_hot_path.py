"""Caller-thread cost of recording a commerce event, against the bare OpenTelemetry call it replaces.

Run: ``python benchmarks/bench_hot_path.py`` (``--quick`` for a smoke run).

What is compared (same payload on both sides: an ``order.completed`` envelope of ~400 B):

(d) nothing configured (no SDK, no sinks): ``@commerce_event`` around a handler vs the bare handler.
(a) mode ``log``: ``record_event`` / a decorated handler vs ``logger.emit(event_name=..., body=...,
    attributes=...)`` with the body and attributes our record would carry, prepared once.
(b) mode ``span``: vs ``span.add_event`` of the same name and attributes on a recording span.
(c) mode ``both``: vs both bare calls.

Fairness: both sides go through the *same* SDK providers — a ``LoggerProvider`` whose only processor is
our ``CommerceLogRecordProcessor`` and a ``TracerProvider`` (always-on sampler) whose only span processor
feeds our ``CommerceSpanExporter`` — and both end up delivered, because the bare records are named
``commerce.*`` too (our processor rebuilds the event from the bare body). The engine is a real
``DeliveryEngine`` with a ``JetStreamSink`` to a local nats-server, so memory stays bounded (every repeat
is flushed to the server, outside the timed loop). The delivery thread must not be what is measured: on a
2-core box it competes for the GIL. So the sink is wrapped in a gate: during a timed loop the first event
wakes the delivery thread, which parks (blocked in ``threading.Event.wait``, GIL released) in
``prepare``; everything else waits in the engine's bounded queue. After the loop the gate opens and the
engine is flushed to the last ack. The wake-up of the delivery thread (one per loop here, one per idle
period in an app) is caller-thread cost and is included. Every timed loop runs inside a fresh recording
span, like a request handler. Figures: median of ``--repeats`` loops of ``--n`` calls (ABBA order, after
a warm-up) and the median of the per-repeat ratios.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any

from _benchutil import SinkWrapper, clean_env, compare, nats_server, us

ORDER_ID = "ord_8c1f2b7e"
ORG = "org_acme"
USER = "usr_42"
DATA = {"order_id": ORDER_ID, "revenue": 129.99, "currency": "USD", "email": "Buyer@Example.com"}


def handler(order_id: str) -> dict[str, Any]:
    """A handler that returns what becomes the event (the decorator lifts id/org/user)."""
    return {"id": order_id, "organization_id": ORG, "user_id": USER, **DATA}


class GatedSink(SinkWrapper):
    """A sink wrapper whose ``prepare`` blocks the delivery thread while the gate is closed."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.gate = threading.Event()
        self.gate.set()

    def prepare(self, pending: Any) -> Any:
        self.gate.wait(120.0)  # bounded: a stuck benchmark still ends
        return self.inner.prepare(pending)


def row(label: str, ours: float, bare: float, ratio: float, target: str = "") -> None:
    print(f"  {label:<44} {us(ours):>10} {us(bare):>10} {ratio:>6.2f}x  +{us(ours - bare):>10} {target}")


def header(title: str, bare_label: str) -> None:
    print(f"\n{title}")
    print(f"  {'':<44} {'ours':>10} {bare_label:>10} {'ratio':>7} {'overhead':>11}")


def bench_unconfigured(n: int, repeats: int) -> None:
    """(d): no SDK, no sinks: the decorator's fast path."""
    from otel_commerce import commerce_event, record_event
    from otel_commerce._runtime import RUNTIME

    decorated = commerce_event("order.completed")(handler)
    header("(d) nothing configured (no OTel SDK, no sinks)", "bare")
    o, b, r = compare(decorated, handler, n=n * 10, repeats=repeats, args=(ORDER_ID,))
    row("@commerce_event handler vs bare handler", o, b, r, "(target: overhead well under 1 µs)")

    def rec() -> None:
        record_event("order.completed", id=ORDER_ID, organization_id=ORG, user_id=USER, data=DATA)

    def nothing() -> None:
        return None

    o, b, r = compare(rec, nothing, n=n, repeats=repeats)
    row("record_event (counted no-op) vs empty call", o, b, r, "(builds the event: it returns its event_id)")
    assert RUNTIME.counters["noop"] > 0


def bench_configured(n: int, repeats: int) -> None:
    from opentelemetry import _logs, context, trace
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    from otel_commerce import CommerceLogRecordProcessor, CommerceSpanExporter, commerce_event, record_event
    from otel_commerce._config import Settings
    from otel_commerce._delivery import DeliveryEngine
    from otel_commerce._record import build_pending, envelope_body, event_attributes, flat_attributes
    from otel_commerce._runtime import RUNTIME
    from otel_commerce._sinks import JetStreamSink

    with nats_server() as server:
        sink = GatedSink(JetStreamSink(server.url))
        engine = DeliveryEngine([sink], queue_size=max(4 * n, 10_000))
        RUNTIME.install(Settings(mode="log"), engine)
        lp = LoggerProvider(shutdown_on_exit=False)
        lp.add_log_record_processor(CommerceLogRecordProcessor())
        _logs.set_logger_provider(lp)
        tp = TracerProvider(sampler=ALWAYS_ON, shutdown_on_exit=False)
        tp.add_span_processor(SimpleSpanProcessor(CommerceSpanExporter()))
        trace.set_tracer_provider(tp)
        tracer = trace.get_tracer("bench")
        logger = _logs.get_logger("bench")

        state: dict[str, Any] = {}

        def before() -> None:
            sink.gate.clear()
            span = tracer.start_span("POST /checkout")
            state["span"] = span
            state["token"] = context.attach(trace.set_span_in_context(span))

        def after() -> None:
            context.detach(state.pop("token"))
            state.pop("span").end()  # the span exporter delivers its commerce.* events now
            sink.gate.set()
            if not engine.flush(60.0):
                raise SystemExit(f"flush failed: {engine.stats()}")

        # The bare side's payload: exactly what our record carries, prepared once.
        before()
        pending = build_pending("order.completed", id=ORDER_ID, organization_id=ORG, user_id=USER, data=DATA)
        after()
        event = pending.event
        assert event is not None
        body = envelope_body(event)
        attrs = flat_attributes(event)
        log_attrs = event_attributes(event)  # what our log record carries (no body by default)
        ts_ns = int(event.timestamp.timestamp() * 1e9)
        name = "commerce." + event.type
        import orjson

        def span_attrs(mode: str) -> dict[str, Any]:
            return {**attrs, "commerce.payload": orjson.dumps(body).decode(), "commerce.mode": mode}

        def bare_log(order_id: str) -> None:
            logger.emit(
                event_name=name,
                attributes=log_attrs,
                timestamp=ts_ns,
                severity_number=SeverityNumber.INFO,
                severity_text="INFO",
            )

        def sdk_only_log(order_id: str) -> None:
            logger.emit(
                event_name="bench.order.completed",
                attributes=log_attrs,
                timestamp=ts_ns,
                severity_number=SeverityNumber.INFO,
                severity_text="INFO",
            )

        def make_bare_span(mode: str) -> Any:
            sattrs = span_attrs(mode)

            def bare_span(order_id: str) -> None:
                trace.get_current_span().add_event(name, attributes=sattrs, timestamp=ts_ns)

            return bare_span

        def ours_record(order_id: str) -> None:
            record_event("order.completed", id=order_id, organization_id=ORG, user_id=USER, data=DATA)

        decorated = commerce_event("order.completed")(handler)
        plans = {
            "log": ("(a) mode log: vs bare logger.emit", "emit", bare_log),
            "span": ("(b) mode span: vs bare span.add_event", "add_event", make_bare_span("span")),
            "both": ("(c) mode both: vs bare add_event + emit", "both", None),
        }
        bare_span_both = make_bare_span("both")

        def bare_both(order_id: str) -> None:
            bare_span_both(order_id)
            bare_log(order_id)

        for mode, (title, label, bare) in plans.items():
            RUNTIME.install(Settings(mode=mode), engine)  # type: ignore[arg-type]
            bare_fn = bare if bare is not None else bare_both

            def bare_handler(order_id: str, _bare: Any = bare_fn) -> None:
                handler(order_id)
                _bare(order_id)

            header(title, label)
            o, b, r = compare(ours_record, bare_fn, n=n, repeats=repeats, args=(ORDER_ID,), before=before, after=after)
            row("record_event", o, b, r, "(target ≤ 1.2x)")
            o, b, r = compare(
                decorated, bare_handler, n=n, repeats=repeats, args=(ORDER_ID,), before=before, after=after
            )
            row("@commerce_event handler vs handler + bare", o, b, r, "(target ≤ 1.2x)")
            if mode == "log":
                o, b, r = compare(
                    bare_log, sdk_only_log, n=n, repeats=repeats, args=(ORDER_ID,), before=before, after=after
                )
                row("info: bare emit commerce.* vs non-commerce", o, b, r, "(our processor's share)")
                o, b, r = compare(
                    ours_record, sdk_only_log, n=n, repeats=repeats, args=(ORDER_ID,), before=before, after=after
                )
                row("info: record_event vs emit SDK-only", o, b, r, "(stricter baseline)")

        # The same call with the delivery thread live (no gate): what a 2-core box sees under load.
        RUNTIME.install(Settings(mode="log"), engine)
        span = tracer.start_span("POST /checkout")
        token = context.attach(trace.set_span_in_context(span))
        m = max(n, 2000)
        for _ in range(m):
            ours_record(ORDER_ID)
        t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        for _ in range(m):
            ours_record(ORDER_ID)
        wall, cpu = (time.perf_counter_ns() - t0) / m, (time.thread_time_ns() - c0) / m
        context.detach(token)
        span.end()
        ok = engine.flush(60.0)
        print(
            f"\n  info: record_event, mode log, delivery thread live (no gate), {m} calls: "
            f"{us(wall)} wall, {us(cpu)} caller-thread CPU per call"
        )
        stats = engine.stats()
        engine.shutdown(10.0)
        print(
            f"\n  delivery check: flush ok={ok}, submitted={stats['submitted']}, exported={stats['exported']}, "
            f"dropped={stats['dropped']}, rejected={stats['rejected']}"
        )
        if not ok or stats["dropped"] or stats["rejected"]:
            raise SystemExit("delivery check failed")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run (few calls, 3 repeats)")
    parser.add_argument("--n", type=int, default=None, help="calls per timed loop (default 3000; quick 300)")
    parser.add_argument("--repeats", type=int, default=None, help="timed loops per side (default 7; quick 3)")
    args = parser.parse_args(argv)
    n = args.n or (300 if args.quick else 3000)
    repeats = args.repeats or (3 if args.quick else 7)
    clean_env()
    print(f"bench_hot_path: python {sys.version.split()[0]}, {n} calls per loop, median of {repeats} loops")
    print(__doc__.split("Fairness:")[1].strip().replace("\n", "\n  ").join(["  Method: ", ""]))
    t0 = time.monotonic()
    bench_unconfigured(n, repeats)  # first: OTel providers can be set only once per process
    bench_configured(n, repeats)
    print(f"\ndone in {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    main()
