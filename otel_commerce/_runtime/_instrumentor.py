"""Zero-code set-up: the ``commerce`` instrumentor, loaded by ``opentelemetry-instrument`` beside any distro.

``opentelemetry-instrument`` runs the distro and the configurator first (the official
``opentelemetry-distro``, a vendor's, or none), then every ``opentelemetry_instrumentor`` entry point.
Ours *adds* our direct processor to whatever SDK ``LoggerProvider`` they set (and, in ``span`` mode,
our span exporter to their ``TracerProvider``); with no SDK provider it builds the delivery engine
from the environment, and ``record_event`` delivers directly. It never replaces a provider, a
processor or an exporter, so the user's OTLP pipeline is untouched, and it names no distro or
configurator, so installing otel-commerce never displaces a vendor's.

Skip it with ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=commerce`` (events are then delivered directly,
``via=fallback`` when a provider exists). ``uninstrument()`` makes the processor it added stop taking
records (the SDK cannot remove a processor); ``record_event``'s fallback delivers them instead.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from .._otel import CommerceLogRecordProcessor
from .._otel._sdk import LoggerProvider, sdk_logger_provider
from ._configure import attach_processor, attach_span_exporter
from ._state import RUNTIME

__all__ = ["CommerceInstrumentor"]

logger = logging.getLogger("otel_commerce")


class CommerceInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """``opentelemetry_instrumentor: commerce``: our processor on the provider the active distro configured.

    ``instrument(logger_provider=..., tracer_provider=...)`` targets given providers instead of the global
    ones. Settings come from the ``OTEL_COMMERCE_*`` environment (an invalid one is logged, not raised:
    start-up must not fail for telemetry).
    """

    _processor: CommerceLogRecordProcessor | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        settings = RUNTIME.settings  # reads the environment now: a typo is logged at start-up
        if settings.disabled:
            return
        # Built now (logged if it cannot be), not on the first event: opentelemetry-instrument runs this on
        # the main thread, so the process hooks (SIGTERM, README "Process lifecycle") are installed there
        # rather than in the first request's thread.
        _ = RUNTIME.engine
        provider = kwargs.get("logger_provider")
        if not isinstance(provider, LoggerProvider):
            provider = sdk_logger_provider()
        if provider is None:
            logger.debug("otel-commerce: no SDK LoggerProvider; commerce events are delivered directly")
        elif settings.mode != "span":
            self._processor = attach_processor(provider)
        if settings.mode == "span":
            attach_span_exporter(kwargs.get("tracer_provider") or trace.get_tracer_provider())

    def _uninstrument(self, **kwargs: Any) -> None:
        if self._processor is not None:
            self._processor.acting = False
            self._processor = None
