"""A process-wide OTel SDK for in-process tests (global providers can be set only once per process).

Logs: our CommerceLogRecordProcessor + an in-memory exporter (what any other exporter would see).
Traces: an in-memory exporter + our CommerceSpanExporter behind a SimpleSpanProcessor.
"""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry import _logs, trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from otel_commerce import CommerceLogRecordProcessor, CommerceSpanExporter


@dataclass
class OtelSdk:
    logs: InMemoryLogRecordExporter
    spans: InMemorySpanExporter
    tracer_provider: TracerProvider
    logger_provider: LoggerProvider

    def clear(self) -> None:
        self.logs.clear()
        self.spans.clear()


_SDK: OtelSdk | None = None


def global_sdk() -> OtelSdk:
    global _SDK
    if _SDK is None:
        logs = InMemoryLogRecordExporter()
        lp = LoggerProvider(shutdown_on_exit=False)
        lp.add_log_record_processor(CommerceLogRecordProcessor())
        lp.add_log_record_processor(SimpleLogRecordProcessor(logs))
        _logs.set_logger_provider(lp)
        spans = InMemorySpanExporter()
        tp = TracerProvider(sampler=ALWAYS_ON, shutdown_on_exit=False)
        tp.add_span_processor(SimpleSpanProcessor(spans))
        tp.add_span_processor(SimpleSpanProcessor(CommerceSpanExporter()))
        trace.set_tracer_provider(tp)
        _SDK = OtelSdk(logs, spans, tp, lp)
    return _SDK
