"""The one place that touches the OpenTelemetry SDK's private surface (``tests/test_sdk_contract.py``).

The SDK has no public way to list a provider's processors or to ask whether a global provider was set,
and its logs signal still lives in ``opentelemetry.sdk._logs``. Everything of that kind that we read is
here, behind small functions, so that an SDK release that moves an attribute breaks one module and its
contract tests (run against the minimum supported and the newest released SDK by ``.ci/run``) instead
of failing silently elsewhere. Every reader degrades to "nothing found" rather than raising.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import _logs, trace
from opentelemetry._logs import _internal as _logs_internal
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadableLogRecord, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

__all__ = [
    "BatchLogRecordProcessor",
    "LogRecordExportResult",
    "LogRecordExporter",
    "LogRecordProcessor",
    "LoggerProvider",
    "ReadWriteLogRecord",
    "ReadableLogRecord",
    "SimpleLogRecordProcessor",
    "installed_logger_provider",
    "installed_providers",
    "log_processors",
    "logger_processors",
    "sdk_logger_provider",
    "span_processors",
]


def log_processors(provider: LoggerProvider) -> list[LogRecordProcessor]:
    """The processors added to ``provider``, in order (``_multi_log_record_processor._log_record_processors``)."""
    multi = getattr(provider, "_multi_log_record_processor", None)
    return list(getattr(multi, "_log_record_processors", ()))


def logger_processors(logger: object) -> tuple[LogRecordProcessor, ...] | None:
    """The processors an SDK ``Logger``'s ``emit`` would call, or None when it would call none of them.

    ``logger._multi_log_record_processor._log_record_processors``: a tuple the provider *replaces* on
    every ``add_log_record_processor`` (so its identity tells a caller that caches on it when the set
    changed); None for a logger that is not the SDK's or that a logger configuration disabled
    (``logger._logger_config.is_enabled``: such an ``emit`` returns before any processor).
    """
    config = getattr(logger, "_logger_config", None)
    if config is None or getattr(config, "is_enabled", False) is not True:
        return None
    multi = getattr(logger, "_multi_log_record_processor", None)
    chain = getattr(multi, "_log_record_processors", None)
    return chain if type(chain) is tuple else None


def span_processors(provider: TracerProvider) -> list[SpanProcessor]:
    """The span processors added to ``provider``, in order (``_active_span_processor._span_processors``)."""
    multi = getattr(provider, "_active_span_processor", None)
    return list(getattr(multi, "_span_processors", ()))


def installed_providers() -> tuple[Any, Any]:
    """The global logger and tracer providers *set by the application* (``None`` for each not set).

    The public getters return a proxy / no-op when none was set; this reads the globals the SDK's
    setters fill (``opentelemetry._logs._internal._LOGGER_PROVIDER``, ``opentelemetry.trace._TRACER_PROVIDER``).
    """
    return getattr(_logs_internal, "_LOGGER_PROVIDER", None), getattr(trace, "_TRACER_PROVIDER", None)


def installed_logger_provider() -> Any:
    """``installed_providers()[0]`` without the tuple (``record_event``'s hot path)."""
    return getattr(_logs_internal, "_LOGGER_PROVIDER", None)


def sdk_logger_provider() -> LoggerProvider | None:
    """The global ``LoggerProvider`` when it is the SDK's (a distro, configurator or config file set it)."""
    provider = _logs.get_logger_provider()
    return provider if isinstance(provider, LoggerProvider) else None
