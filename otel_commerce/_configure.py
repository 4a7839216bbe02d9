"""``configure()``: wire otel-commerce into the application's OTel providers, in code.

It reads the same settings as the environment (arguments win), builds the delivery engine, and *adds*
our processor to the ``LoggerProvider`` the application already set (creating one only when there
is none). In ``span`` mode it also adds the span exporter to an SDK ``TracerProvider``.
"""

from __future__ import annotations

from typing import Any, Literal

from opentelemetry import _logs, trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from ._config import Settings
from ._delivery._pending import OnError
from ._lifecycle import export_settings_env
from ._otel import CommerceLogRecordProcessor, CommerceSpanExporter
from ._runtime import RUNTIME, build_engine

__all__ = ["configure", "flush", "shutdown", "stats"]


def _processors(provider: LoggerProvider) -> list[Any]:
    multi = getattr(provider, "_multi_log_record_processor", None)
    return list(getattr(multi, "_log_record_processors", ()))


def _span_processors(provider: TracerProvider) -> list[Any]:
    multi = getattr(provider, "_active_span_processor", None)
    return list(getattr(multi, "_span_processors", ()))


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
    twice. Raises :class:`ConfigurationError` for invalid settings.

    Process hooks (README "Process lifecycle"): called from the main thread, it chains a SIGTERM handler
    (``handle_signals=False`` / ``OTEL_COMMERCE_SIGNALS=false`` opts out). ``export_env`` writes the
    effective settings to ``os.environ`` so that spawned ``multiprocessing`` children (which never run
    code under ``if __name__ == "__main__"``) configure themselves alike: ``"settings"`` (default)
    without credentials, ``"all"`` with them (token, password, collector headers), ``"none"``.
    """
    if export_env not in ("settings", "all", "none"):
        from ._errors import ConfigurationError

        raise ConfigurationError(f"export_env must be 'settings', 'all' or 'none', got {export_env!r}")
    resolved = Settings.from_env(
        nats_url=nats_url, collector_endpoint=collector_endpoint, mode=mode, pii=pii, **settings
    )
    engine = build_engine(resolved, RUNTIME.report_error)
    old = RUNTIME.install(resolved, engine)
    if old is not None and old is not engine:
        old.shutdown(5.0)
    export_settings_env(resolved, export_env)
    if on_error is not None and on_error not in RUNTIME.on_error:
        RUNTIME.on_error.append(on_error)

    lp = logger_provider or _logs.get_logger_provider()
    if not isinstance(lp, LoggerProvider):
        lp = LoggerProvider()
        _logs.set_logger_provider(lp)
    if not any(isinstance(p, CommerceLogRecordProcessor) for p in _processors(lp)):
        lp.add_log_record_processor(CommerceLogRecordProcessor())

    if resolved.mode == "span":
        tp = tracer_provider or trace.get_tracer_provider()
        if isinstance(tp, TracerProvider) and not any(
            isinstance(getattr(p, "span_exporter", None), CommerceSpanExporter) for p in _span_processors(tp)
        ):
            tp.add_span_processor(SimpleSpanProcessor(CommerceSpanExporter()))
    return resolved


def flush(timeout_seconds: float | None = None) -> bool:
    """Wait until every recorded event is delivered (or the timeout); True when all were."""
    return RUNTIME.flush(timeout_seconds)


def shutdown(timeout_seconds: float | None = None) -> bool:
    """Flush and stop the delivery engine; later events are handled as if nothing was configured."""
    engine = RUNTIME.install(RUNTIME.settings, None)
    return True if engine is None else engine.shutdown(timeout_seconds)


def stats() -> dict[str, int]:
    """Counters: recorded, noop, errors, and the engine's (queued, exported, retried, dropped, rejected…)."""
    out = dict(RUNTIME.counters)
    engine = RUNTIME.engine
    if engine is not None:
        out.update(engine.stats())
    return out
