"""``record_event``'s fast path: with our processor the only one on the provider, no SDK log record is
built (nobody would read it) and the event is handed over as ``on_emit`` would; the moment another
processor is added, records are built again and reach it. Subprocesses: OTel providers are process-global."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

APP = textwrap.dedent(
    """
    import json, sys
    from opentelemetry import _logs, metrics, trace
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    import otel_commerce
    from otel_commerce._record import _recorder
    from otel_commerce.testing import capture_events

    built = []

    class CountingRecord(_recorder.CommerceLogRecord):
        def __setattr__(self, name, value):  # record_event sets the event on every record it builds
            if name == "commerce_pending":
                built.append(1)
            super().__setattr__(name, value)

    _recorder.CommerceLogRecord = CountingRecord  # counts the SDK log records record_event builds
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    trace.set_tracer_provider(TracerProvider())
    lp = LoggerProvider()
    _logs.set_logger_provider(lp)
    otel_commerce.configure(mode=sys.argv[1])  # our processor: the only one on the provider
    prefix = sys.argv[2]
    tracer = trace.get_tracer("app")
    out = {}
    with capture_events() as events, tracer.start_as_current_span("checkout") as span:
        ids = [otel_commerce.record_event("order.completed", organization_id="acme",
                                          data={"order_id": f"{prefix}-{i}", "revenue": 1.5, "email": "a@b.co"})
               for i in range(1000)]
        out["built_fast"] = len(built)
        app_logs = InMemoryLogRecordExporter()
        lp.add_log_record_processor(SimpleLogRecordProcessor(app_logs))  # after 1,000 fast-path events
        last = otel_commerce.record_event("order.completed", organization_id="acme",
                                          data={"order_id": f"{prefix}-last", "revenue": 2.5})
    out["built"] = len(built)
    out["delivered"] = [e.event_id for e in events]
    out["ids"] = ids + [last]
    out["trace_ids"] = sorted({e.trace_id for e in events})
    out["span_trace_id"] = format(span.get_span_context().trace_id, "032x")
    out["app_logs"] = [(r.log_record.event_name, dict(r.log_record.attributes)["commerce.event_id"],
                        r.log_record.trace_id == span.get_span_context().trace_id)
                       for r in app_logs.get_finished_logs()]
    out["email"] = events[0].data["email"]
    points = {}
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                for p in m.data.data_points:
                    points[m.name + "/" + str(dict(p.attributes).get("via"))] = p.value
    out["metrics"] = points
    out["stats"] = otel_commerce.stats()
    print(json.dumps(out))
    """
)


def _run(tmp_path, mode: str, prefix: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    app = tmp_path / "app.py"
    app.write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PUBSUB_URL", "ANALYTICS_"))}
    proc = subprocess.run(
        [sys.executable, str(app), mode, prefix], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_no_log_record_while_ours_is_the_only_processor_then_a_new_one_gets_the_next_event(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = _run(tmp_path, "log", "fp1")
    assert out["built_fast"] == 0  # 1,000 events, no SDK log record built
    assert out["delivered"] == out["ids"]  # every event delivered once, in order (1,001)
    assert out["trace_ids"] == [out["span_trace_id"]]  # trace context still taken on the caller's thread
    assert out["email"] != "a@b.co" and len(out["email"]) == 64  # PII policy applied
    assert out["built"] == 1  # the processor added after them: the next event builds a record...
    assert out["app_logs"] == [["commerce.order.completed", out["ids"][-1], True]]  # ...and reaches it
    assert out["metrics"]["commerce.events.recorded/otel"] == 1001  # counted as taken by our processor
    assert out["stats"]["recorded"] == 1001 and out["stats"]["fallback"] == 0


def test_both_mode_also_takes_the_fast_path_for_its_log_side(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = _run(tmp_path, "both", "fp2")
    assert out["built_fast"] == 0
    assert out["delivered"] == out["ids"]
    assert out["app_logs"] == [["commerce.order.completed", out["ids"][-1], True]]
