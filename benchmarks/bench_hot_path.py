"""Caller-thread CPU of recording a commerce event, against the bare OpenTelemetry call it replaces.

Run: ``python benchmarks/bench_hot_path.py`` (``--quick`` for a smoke run).

Payload (every row): ``order.completed`` with ``order_id``, ``revenue``, ``currency``, ``email`` and two
items (``data={"items": [...]}``), ``id`` / ``organization_id`` / ``user_id`` as keyword arguments.

Rows (issue 19's acceptance criteria are the ratios):

(a) ``record_event`` with only our processor on the ``LoggerProvider`` (what ``configure()`` sets up)
    vs a bare SDK ``logger.emit`` of the record ours would carry, on a provider with no processor.
(b) ``record_event`` with our processor beside an OTLP-style ``BatchLogRecordProcessor`` (the
    recommended set-up: the app's batch processor first, ours added by ``configure()``) vs the bare
    emit on a provider with the same batch processor only. The batch exporter is a no-op stand-in
    for OTLP (its export runs on the batch worker thread, not the caller's).
(c) (a) with the ``wal`` spool: ``record_event`` with an engine whose spool is ``wal`` (fsync ``none``, and
    ``grouped``) vs the same call with an engine without a spool, in the same process (the engines are swapped
    between loops; each loop checks its engine received every event). Target: (a) + at most 2 µs.
(dec) ``@commerce_event`` net of the handler (decorated handler minus the bare handler), beside (a).
(peers) Segment ``analytics-python`` ``track()`` and PostHog ``capture()`` with the same properties
    (optional ``bench`` extra; shown side by side, not a criterion). Their upload threads point at a
    closed port on 127.0.0.1: only the caller-side cost is measured.

Method: figures are **caller-thread CPU** (``time.thread_time_ns``), so the delivery / batch / upload
threads are not counted even when they run. GC stays on. Each scenario runs in its own process (OTel
providers are process-global); each process times ``--repeats`` loops of ``--n`` calls per side in
ABBA order after a warm-up and reports the median; the parent prints the median of 3 processes and
the 1-minute load average before each one (a process started at load > 2 is run again once and the
run at lower load kept). A recording span is current during every loop (a request handler), and an
SDK ``MeterProvider`` is set (our counters are then live instruments). Our delivery engine is real
(a ``JetStreamSink`` to a local nats-server) but gated: its thread parks in ``prepare`` during a loop
and the queue is flushed to the last ack after it, outside the timed region.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

ORDER_ID = "ord_8c1f2b7e"
ORG = "org_acme"
USER = "usr_42"
DATA: dict[str, Any] = {
    "order_id": ORDER_ID,
    "revenue": 129.99,
    "currency": "USD",
    "email": "Buyer@Example.com",
    "items": [
        {"product_id": "sku_tee", "name": "Tee", "price": 29.99, "quantity": 2},
        {"product_id": "sku_mug", "name": "Mug", "price": 70.01, "quantity": 1},
    ],
}
SCENARIOS = ("a", "b", "c", "peers")


def handler(order_id: str) -> dict[str, Any]:
    """A handler that returns what becomes the event (the decorator lifts id/org/user)."""
    return {"id": order_id, "organization_id": ORG, "user_id": USER, **DATA}


# ------------------------------------------------------------------------------------------- child
def cpu_per_call(fn: Callable[[], Any], n: int) -> float:
    """Caller-thread CPU nanoseconds per ``fn()`` over ``n`` calls."""
    rng = range(n)
    c0 = time.thread_time_ns()
    for _ in rng:
        fn()
    return (time.thread_time_ns() - c0) / n


def measure(
    sides: dict[str, Callable[[], Any]],
    n: int,
    repeats: int,
    before: Callable[[], None] | None = None,
    after: Callable[[], None] | None = None,
    select: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """Median CPU ns/call of each side (sides alternate, reversed every other repeat, after a warm-up).

    ``select(name)``, when given, runs before ``before`` for each loop (scenario c: the side's engine)."""
    names = list(sides)
    for name in names:
        if select:
            select(name)
        if before:
            before()
        cpu_per_call(sides[name], max(n // 4, 50))
        if after:
            after()
    times: dict[str, list[float]] = {k: [] for k in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else reversed(names):
            if select:
                select(name)
            if before:
                before()
            gc.collect()
            times[name].append(cpu_per_call(sides[name], n))
            if after:
                after()
    return {k: statistics.median(v) for k, v in times.items()}


def child_otel(scenario: str, n: int, repeats: int) -> dict[str, float]:
    from _benchutil import SinkWrapper, clean_env, nats_server
    from opentelemetry import _logs, context, metrics, trace
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter, LogRecordExportResult
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    clean_env()
    from otel_commerce import commerce_event, record_event
    from otel_commerce._config import Settings
    from otel_commerce._delivery import DeliveryEngine
    from otel_commerce._delivery._spool import Spool, SpoolKey
    from otel_commerce._model._pending import decode_pending, encode_pending
    from otel_commerce._record import build_pending, event_attributes
    from otel_commerce._runtime import RUNTIME
    from otel_commerce._runtime._configure import attach_processor
    from otel_commerce._sinks import JetStreamSink

    class NullExporter(LogRecordExporter):
        """Stands in for the OTLP exporter behind the batch processor (runs on the batch worker thread)."""

        def export(self, batch: Any) -> LogRecordExportResult:
            return LogRecordExportResult.SUCCESS

        def shutdown(self) -> None:
            return None

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    def batch() -> BatchLogRecordProcessor:
        return BatchLogRecordProcessor(NullExporter(), max_queue_size=1_000_000, max_export_batch_size=512)

    class GatedSink(SinkWrapper):
        def __init__(self, inner: Any) -> None:
            super().__init__(inner)
            self.gate = threading.Event()
            self.gate.set()

        def prepare(self, pending: Any) -> Any:
            self.gate.wait(120.0)  # bounded: a stuck benchmark still ends
            return self.inner.prepare(pending)

    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()], shutdown_on_exit=False))
    tp = TracerProvider(sampler=ALWAYS_ON, shutdown_on_exit=False)
    trace.set_tracer_provider(tp)
    tracer = trace.get_tracer("bench")
    out: dict[str, float] = {}
    spool_dir = tempfile.mkdtemp(prefix="bench-hot-wal-")
    with nats_server() as server:
        sink = GatedSink(JetStreamSink(server.url))
        engine = DeliveryEngine([sink], queue_size=max(4 * n, 10_000))
        # scenario c: the same engine with a wal spool (fsync none / grouped), swapped in by select()
        engines: dict[str, tuple[Any, GatedSink]] = {"ours": (engine, sink)}
        if scenario == "c":
            for fsync in ("none", "grouped"):
                wal_sink = GatedSink(JetStreamSink(server.url))
                spool = Spool(
                    os.path.join(spool_dir, fsync), SpoolKey("bench", (wal_sink.inner.spool_identity(),)),
                    mode="wal", fsync=fsync, encode=encode_pending, decode=decode_pending,
                )  # fmt: skip
                engines["wal_" + fsync] = (DeliveryEngine([wal_sink], spool=spool, queue_size=max(4 * n, 10_000)), wal_sink)
        settings = Settings(mode="log")
        RUNTIME.install(settings, engine)
        lp = LoggerProvider(shutdown_on_exit=False)
        bare_lp = LoggerProvider(shutdown_on_exit=False)
        if scenario == "b":
            lp.add_log_record_processor(batch())  # the app's OTLP pipeline, set up first
            bare_lp.add_log_record_processor(batch())
        _logs.set_logger_provider(lp)
        attach_processor(lp)  # what configure() does
        bare_logger = bare_lp.get_logger("bench")
        state: dict[str, Any] = {}

        current = {"sink": sink, "engine": engine, "submitted": 0}

        def select(name: str) -> None:
            eng, gated = engines.get(name, (engine, sink))
            RUNTIME.install(settings, eng)
            current.update(sink=gated, engine=eng, submitted=eng.stats()["submitted"])

        def before() -> None:
            current["sink"].gate.clear()
            span = tracer.start_span("POST /checkout")
            state["span"] = span
            state["token"] = context.attach(trace.set_span_in_context(span))

        def after() -> None:
            context.detach(state.pop("token"))
            state.pop("span").end()
            current["sink"].gate.set()
            eng = current["engine"]
            if not eng.flush(60.0):
                raise SystemExit(f"flush failed: {eng.stats()}")

        before()
        pending = build_pending("order.completed", id=ORDER_ID, organization_id=ORG, user_id=USER, data=DATA)
        after()
        event = pending.event
        assert event is not None
        log_attrs = event_attributes(event, mask=True)  # what our log record carries (no body by default)
        name = "commerce." + event.type

        def bare_emit() -> None:
            bare_logger.emit(
                event_name=name,
                attributes=log_attrs,
                timestamp=time.time_ns(),
                severity_number=SeverityNumber.INFO,
                severity_text="INFO",
            )

        def ours() -> None:
            record_event("order.completed", id=ORDER_ID, organization_id=ORG, user_id=USER, data=DATA)

        decorated = commerce_event("order.completed")(handler)

        def dec() -> None:
            decorated(ORDER_ID)

        def bare_handler() -> None:
            handler(ORDER_ID)

        sides = {"ours": ours, "bare": bare_emit}
        if scenario == "a":
            sides.update(decorated=dec, handler=bare_handler)
        if scenario == "c":
            sides = {"ours": ours, "wal_none": ours, "wal_grouped": ours}

            def checked_after() -> None:  # the swapped-in engine received the loop's events
                eng = current["engine"]
                got = eng.stats()["submitted"] - current["submitted"]
                after()
                if got < max(n // 4, 50):  # a timed loop (n calls) or a warm-up (n // 4, at least 50)
                    raise SystemExit(f"engine swap failed: only {got} events reached the engine under test")

            out = measure(sides, n, repeats, before, checked_after, select)
        else:
            out = measure(sides, n, repeats, before, after)
        RUNTIME.install(settings, engine)
        for eng, _gated in engines.values():
            stats = eng.stats()
            eng.shutdown(10.0)
            if stats["dropped"] or stats["rejected"]:
                raise SystemExit(f"delivery check failed: {stats}")
    shutil.rmtree(spool_dir, ignore_errors=True)
    return out


def child_peers(n: int, repeats: int) -> dict[str, float]:
    import logging

    out: dict[str, float] = {}
    logging.getLogger("segment").setLevel(logging.CRITICAL)
    logging.getLogger("posthog").setLevel(logging.CRITICAL)
    host = "http://127.0.0.1:9"  # closed: the upload threads fail and back off; callers only enqueue
    props = {k: v for k, v in DATA.items()}
    sides: dict[str, Callable[[], Any]] = {}
    try:
        from segment.analytics import Client as SegmentClient

        seg = SegmentClient("bench-key", host=host, max_queue_size=10_000_000, max_retries=0)

        def segment_track() -> None:
            seg.track(user_id=USER, event="Order Completed", properties=props)

        sides["segment"] = segment_track
    except ImportError:
        pass
    try:
        from posthog import Posthog

        ph = Posthog("bench-key", host=host, max_queue_size=10_000_000, max_retries=0)

        def posthog_capture() -> None:
            ph.capture("order completed", distinct_id=USER, properties=props)

        sides["posthog"] = posthog_capture
    except ImportError:
        pass
    if sides:
        out = measure(sides, n, repeats)
    return out


# ------------------------------------------------------------------------------------------ parent
def run_child(scenario: str, n: int, repeats: int) -> tuple[dict[str, float], float]:
    """One child process; repeated once when it started at load > 2 (the run at lower load is kept)."""
    best: tuple[dict[str, float], float] | None = None
    for _attempt in range(2):
        load = os.getloadavg()[0]
        cmd = [sys.executable, __file__, "--child", scenario, "--n", str(n), "--repeats", str(repeats)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"child {scenario} failed:\n{proc.stdout}\n{proc.stderr}")
        figures = json.loads(proc.stdout.strip().splitlines()[-1])
        if best is None or load < best[1]:
            best = (figures, load)
        if load <= 2 or _attempt == 1:
            break
        print(f"    (load {load:.2f} > 2 at start: run again)", flush=True)
    assert best is not None
    return best


def us(ns: float) -> str:
    return f"{ns / 1000:6.2f} µs"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run (few calls, 3 repeats, 1 process)")
    parser.add_argument("--n", type=int, default=None, help="calls per timed loop (default 2000; quick 300)")
    parser.add_argument("--repeats", type=int, default=None, help="timed loops per side (default 7; quick 3)")
    parser.add_argument("--processes", type=int, default=None, help="processes per scenario (default 3)")
    parser.add_argument("--only", choices=SCENARIOS, action="append", help="run only these scenarios")
    parser.add_argument("--child", choices=SCENARIOS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    n = args.n or (300 if args.quick else 2000)
    repeats = args.repeats or (3 if args.quick else 7)
    if args.child:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        figures = child_peers(n, repeats) if args.child == "peers" else child_otel(args.child, n, repeats)
        print(json.dumps(figures))
        return
    procs = args.processes or (1 if args.quick else 3)
    print(
        f"bench_hot_path: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {n} calls per loop, "
        f"median of {repeats} loops per process, median of {procs} processes; caller-thread CPU per call"
    )
    t0 = time.monotonic()
    results: dict[str, list[dict[str, float]]] = {}
    for scenario in args.only or SCENARIOS:
        for i in range(procs):
            figures, load = run_child(scenario, n, repeats)
            print(f"  scenario {scenario} process {i + 1}: load average {load:.2f}", flush=True)
            results.setdefault(scenario, []).append(figures)

    def med(scenario: str, key: str) -> float:
        return statistics.median(f[key] for f in results[scenario])

    def ratio(scenario: str, a: str, b: str) -> float:
        return statistics.median(f[a] / f[b] for f in results[scenario])

    print(f"\n  {'row':<64} {'ours':>9} {'baseline':>9} {'ratio':>6}  target")
    if "a" in results:
        print(
            f"  {'(a) record_event, only our processor vs bare logger.emit':<64} "
            f"{us(med('a', 'ours'))} {us(med('a', 'bare'))} {ratio('a', 'ours', 'bare'):5.2f}x  ≤ 1.4x"
        )
        net = statistics.median(f["decorated"] - f["handler"] for f in results["a"])
        extra = statistics.median(f["decorated"] - f["handler"] - f["ours"] for f in results["a"])
        print(
            f"  {'@commerce_event net of the handler vs (a) record_event':<64} "
            f"{us(net)} {us(med('a', 'ours'))} {extra / 1000:+5.2f}µs  ≤ (a) + 1 µs"
        )
    if "b" in results:
        print(
            f"  {'(b) record_event beside BatchLogRecordProcessor vs bare emit + batch':<64} "
            f"{us(med('b', 'ours'))} {us(med('b', 'bare'))} {ratio('b', 'ours', 'bare'):5.2f}x  ≤ 1.3x"
        )
    if "c" in results:
        for fsync in ("none", "grouped"):
            side = "wal_" + fsync
            extra = statistics.median(f[side] - f["ours"] for f in results["c"])
            print(
                f"  {f'(c) (a) with the wal spool, fsync {fsync}, vs (a) same process':<64} "
                f"{us(med('c', side))} {us(med('c', 'ours'))} {extra / 1000:+5.2f}µs  ≤ (a) + 2 µs"
            )
    if results.get("peers") and results["peers"][0]:
        for key, label in (("segment", "Segment analytics-python track()"), ("posthog", "PostHog capture()")):
            if key in results["peers"][0]:
                print(f"  {'peer: ' + label:<64} {us(med('peers', key))}")
    elif "peers" in results:
        print("  peers: not installed (pip install 'otel-commerce[bench]')")
    print(f"\ndone in {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    main()
