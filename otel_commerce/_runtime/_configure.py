"""``configure()``: wire otel-commerce into the application's OTel providers, in code.

It reads the same settings as the environment (arguments win), builds the delivery engine, and *adds*
our processor to the ``LoggerProvider`` the application already set (creating one only when there
is none). In ``span`` mode it also adds the span exporter to an SDK ``TracerProvider``.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from opentelemetry import _logs, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from .._config import Settings
from .._errors import ConfigurationError
from .._model import OnError
from .._otel import CommerceLogRecordProcessor, CommerceSpanExporter
from .._otel._sdk import LoggerProvider, log_processors, span_processors
from .._record import warn_without_tracer_provider
from . import _exit
from ._lifecycle import export_settings_env
from ._state import RUNTIME

__all__ = ["attach_processor", "attach_span_exporter", "configure", "flush", "shutdown", "stats"]

logger = logging.getLogger("otel_commerce")


def _warn_without_tracer_provider(tracer_provider: TracerProvider | None) -> None:
    """Warn once when no SDK ``TracerProvider`` is set: events would carry no trace ids."""
    warn_without_tracer_provider(tracer_provider)


def attach_processor(provider: LoggerProvider) -> CommerceLogRecordProcessor:
    """Our direct processor on ``provider``: the one already there (re-enabled), else a new one added last."""
    for processor in log_processors(provider):
        if isinstance(processor, CommerceLogRecordProcessor):
            processor.acting = True
            return processor
    processor = CommerceLogRecordProcessor()
    provider.add_log_record_processor(processor)
    return processor


def attach_span_exporter(provider: object) -> None:
    """``CommerceSpanExporter`` behind a ``SimpleSpanProcessor`` on an SDK ``provider`` (never twice; else nothing)."""
    if isinstance(provider, TracerProvider) and not any(
        isinstance(getattr(p, "span_exporter", None), CommerceSpanExporter) for p in span_processors(provider)
    ):
        provider.add_span_processor(SimpleSpanProcessor(CommerceSpanExporter()))


def configure(
    *,
    nats_url: str | None = None,
    collector_endpoint: str | None = None,
    mode: str | None = None,
    pii: str | None = None,
    on_error: OnError | None = None,
    logger_provider: LoggerProvider | None = None,
    tracer_provider: TracerProvider | None = None,
    export_env: Literal["settings", "all", "none"] = "settings",
    **settings: Any,
) -> Settings:
    """Configure otel-commerce for this process and return the settings in force.

    Keyword arguments override the ``OTEL_COMMERCE_*`` environment (see ``Settings``). Calling it
    again replaces the engine (the old one is flushed and shut down) and never adds our processor
    twice. Raises :class:`ConfigurationError` for every invalid argument (wrong type, out of range,
    unknown name, unusable URL / TLS / credential file); invalid *environment* values never raise
    (see ``Settings``: a WARNING and the default, or an ERROR and that sink disabled).

    Process hooks (README "Process lifecycle"): called from the main thread, it chains a SIGTERM handler
    (``handle_signals=False`` / ``OTEL_COMMERCE_SIGNALS=false`` opts out). ``export_env`` writes the
    effective settings to ``os.environ`` so that spawned ``multiprocessing`` children (which never run
    code under ``if __name__ == "__main__"``) configure themselves alike: ``"settings"`` (default)
    without credentials, ``"all"`` with them (token, password, collector headers), ``"none"``.
    """
    if export_env not in ("settings", "all", "none"):
        raise ConfigurationError(f"export_env must be 'settings', 'all' or 'none', got {export_env!r}")
    if on_error is not None and not callable(on_error):
        raise ConfigurationError(f"on_error must be callable, got {type(on_error).__name__}")
    if logger_provider is not None and not isinstance(logger_provider, LoggerProvider):
        raise ConfigurationError(f"logger_provider must be an SDK LoggerProvider, got {type(logger_provider).__name__}")
    if tracer_provider is not None and not isinstance(tracer_provider, TracerProvider):
        raise ConfigurationError(f"tracer_provider must be an SDK TracerProvider, got {type(tracer_provider).__name__}")
    resolved = RUNTIME.apply_settings(
        dict(nats_url=nats_url, collector_endpoint=collector_endpoint, mode=mode, pii=pii, **settings)
    )
    export_settings_env(resolved, export_env)
    if on_error is not None and on_error not in RUNTIME.on_error:
        RUNTIME.on_error.append(on_error)

    lp = logger_provider or _logs.get_logger_provider()
    if not isinstance(lp, LoggerProvider):
        lp = LoggerProvider()
        _logs.set_logger_provider(lp)
    attach_processor(lp)

    _warn_without_tracer_provider(tracer_provider)
    if resolved.mode == "span":
        attach_span_exporter(tracer_provider or trace.get_tracer_provider())
    return resolved


def flush(timeout_seconds: float | None = None) -> bool:
    """Wait until every recorded event is delivered (or the timeout); True when all were."""
    return RUNTIME.flush(timeout_seconds)


def shutdown(timeout_seconds: float | None = None) -> bool:
    """Flush and stop the delivery engine; later events are handled as if nothing was configured.

    ``timeout_seconds`` (default: the exit timeout, ``OTEL_COMMERCE_EXIT_TIMEOUT_MS`` / ``configure(
    exit_timeout_seconds=...)``, 5 s) bounds the flush: what is left is spooled when the spool is on, else
    counted dropped and logged at WARNING. Returns True when everything was delivered.
    """
    engine = RUNTIME.install(RUNTIME.settings, None)
    if timeout_seconds is None:
        timeout_seconds = _exit.exit_timeout()
    return True if engine is None else engine.shutdown(timeout_seconds)


def stats() -> dict[str, int]:
    """Counters: recorded, noop, errors, and the engine's (queued, exported, retried, dropped, rejected…)."""
    out = dict(RUNTIME.counters)
    engine = RUNTIME.engine
    if engine is not None:
        out.update(engine.stats())
    return out
