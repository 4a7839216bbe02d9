"""Zero-code set-up: the ``commerce`` distro and configurator for ``opentelemetry-instrument``.

``OTEL_PYTHON_DISTRO=commerce OTEL_PYTHON_CONFIGURATOR=commerce OTEL_LOGS_EXPORTER=otlp,commerce``:
the SDK builds its providers as usual, except that the ``commerce`` logs exporter is installed as our
*direct* processor (no batch processor, no second queue) and the ``commerce`` traces exporter behind a
``SimpleSpanProcessor`` (it only hands span events to the engine). Other exporters (``otlp``) are
untouched, and each event is delivered once.
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.sdk._configuration import _OTelSDKConfigurator
from opentelemetry.sdk._logs import LogRecordProcessor
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

from .._otel import CommerceLogExporter, CommerceLogRecordProcessor, CommerceSpanExporter

__all__ = ["CommerceConfigurator", "CommerceDistro"]


def _log_processor_for(exporter: LogRecordExporter, *args: Any, **kwargs: Any) -> LogRecordProcessor:
    if isinstance(exporter, CommerceLogExporter):
        exporter.shutdown()  # retire it: the direct processor replaces the batch path
        return CommerceLogRecordProcessor()
    return BatchLogRecordProcessor(exporter, *args, **kwargs)


def _span_processor_for(exporter: SpanExporter, *args: Any, **kwargs: Any) -> SpanProcessor:
    if isinstance(exporter, CommerceSpanExporter):
        return SimpleSpanProcessor(exporter)
    return BatchSpanProcessor(exporter, *args, **kwargs)


class CommerceConfigurator(_OTelSDKConfigurator):
    """The SDK's configurator, with our exporters installed on their fast paths."""

    def _configure(self, **kwargs: Any) -> None:
        kwargs.setdefault("export_log_record_processor", _log_processor_for)
        kwargs.setdefault("export_span_processor", _span_processor_for)
        super()._configure(**kwargs)  # type: ignore[no-untyped-call]


class CommerceDistro(BaseDistro):  # type: ignore[misc]
    """Defaults for ``opentelemetry-instrument``: commerce events through the ``commerce`` logs exporter."""

    def _configure(self, **kwargs: Any) -> None:
        os.environ.setdefault("OTEL_LOGS_EXPORTER", "commerce")
        os.environ.setdefault("OTEL_TRACES_EXPORTER", "none")
        os.environ.setdefault("OTEL_METRICS_EXPORTER", "none")
