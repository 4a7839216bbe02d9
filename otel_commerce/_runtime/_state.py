"""Process-wide state: settings, the delivery engine, error callbacks, captures, counters.

Everything that records an event (``record_event``, the decorator, the processor and exporters) reads
this one object; ``configure()`` and the env-driven entry points fill it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import _log
from .._config import Settings
from .._delivery import _metrics, exit_engines, shutdown_all
from .._model import Pending
from .._otel import _sdk, _slot
from . import _exit, _late  # noqa: F401  (_late installs the late-submit hook)

if TYPE_CHECKING:
    from .._delivery import DeliveryEngine
    from .._model import CommerceEvent

__all__ = ["RUNTIME", "Runtime", "build_engine", "build_sinks", "spool_key"]

logger = logging.getLogger("otel_commerce")

ErrorCallback = Callable[[BaseException, "Pending | None"], None]


def build_engine(settings: Settings, on_error: ErrorCallback | None = None) -> DeliveryEngine | None:
    """A delivery engine with the sinks the settings name (None when there is none, or when disabled)."""
    if settings.disabled or not settings.has_sink:
        return None
    from .._delivery import DeliveryEngine

    sinks = build_sinks(settings)
    from .._delivery._spool import make_spool
    from .._model._pending import decode_pending, encode_pending

    spool = make_spool(
        settings.spool,
        settings.spool_dir,
        [sink.spool_identity() for sink in sinks],
        fsync=settings.spool_fsync,
        fsync_interval_seconds=settings.spool_fsync_ms / 1000,
        encode=encode_pending,
        decode=decode_pending,
    )
    _log.setup()
    spool_line = f"{spool.mode} in {spool.directory}" if spool is not None else "off"
    _log.startup([s.name + " " + getattr(s, "endpoint", "") for s in sinks], settings.mode, spool_line)
    logger.debug("otel-commerce: %r", settings)  # redacted (Settings.__repr__)
    engine = DeliveryEngine(
        sinks,
        spool=spool,
        queue_size=settings.queue_size,
        batch_size=settings.batch_size,
        linger_seconds=settings.linger_seconds,
        max_attempts=settings.max_attempts,
        max_age_seconds=settings.max_age_seconds,
        on_error=on_error,
        exit_hook=True,  # shut down by the exit work, after _flush_providers_at_exit (see _exit)
    )
    # Spooled events of this service's dead processes (its own key) are replayed now, not at the first event;
    # with no backlog the engine stays lazy (no thread until the first event).
    engine.start_if_backlog()
    return engine


def build_sinks(settings: Settings) -> list[Any]:
    """The sinks the settings name (not started: nothing connects until an engine starts them)."""
    from .._sinks import CollectorSink, JetStreamSink

    sinks: list[Any] = []
    if settings.nats_url:
        opts = settings.nats_connect_options()
        servers = opts.pop("servers")
        sinks.append(JetStreamSink(",".join(servers), connect_options=opts))
    if settings.collector_endpoint:
        sinks.append(
            CollectorSink(
                settings.collector_endpoint, headers=dict(settings.collector_headers), gzip=settings.collector_gzip
            )
        )
    return sinks


def spool_key(settings: Settings) -> Any:
    """The spool key of the engine these settings build (``_delivery._spool.SpoolKey``: service + sinks)."""
    from .._delivery._spool import SpoolKey, service_name

    return SpoolKey(service_name(), tuple(sink.spool_identity() for sink in build_sinks(settings)))


def _hook_process(settings: Settings) -> None:
    """Signals (main thread only), Celery / uWSGI checks, the exit deadline: whenever an engine is set up."""
    from . import _lifecycle

    _exit.set_exit_timeout(settings.exit_timeout_seconds)
    try:
        _lifecycle.install_signal_handlers(settings)
        _lifecycle.hook_celery()
        _lifecycle.check_uwsgi()
    except Exception:  # pragma: no cover - hooks must never break recording
        logger.warning(
            "otel-commerce: installing process hooks failed: events may be lost at exit unless you call flush()",
            exc_info=True,
        )


class Runtime:
    """The one mutable global of otel-commerce."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._settings: Settings | None = None
        self._engine: DeliveryEngine | None = None
        self._engine_built = False
        self.on_error: list[ErrorCallback] = []
        self.captures: list[list[CommerceEvent]] = []
        self.log_exporters = 0  # live CommerceLogExporter instances (batch path: no direct hand-off)
        self.counters: dict[str, int] = {"recorded": 0, "noop": 0, "errors": 0, "discarded": 0, "fallback": 0}
        self._noop_warned = False
        self._disabled_by: BaseException | None = None  # the configuration error that disabled delivery
        self._announced: set[str] = set()  # start-up warnings already given (one per switch per process)

    # ---- settings / engine ------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        s = self._settings
        if s is None:
            with self._lock:
                if self._settings is None:
                    try:
                        self._settings = Settings.from_env()
                    except Exception as exc:  # a typo in the environment must not break handlers
                        logger.error("otel-commerce: invalid settings, commerce events are disabled: %s", exc)
                        self._settings = Settings()
                        self._disabled_by = exc
                    self._announce(self._settings)
                s = self._settings
        return s

    def _announce(self, settings: Settings) -> None:
        """One WARNING per process for each switch that turns something off (DESIGN.md "record")."""
        if settings.spool_fsync != "none" and settings.spool != "wal" and "spool_fsync" not in self._announced:
            self._announced.add("spool_fsync")
            logger.warning(
                "otel-commerce: spool_fsync=%s (OTEL_COMMERCE_SPOOL_FSYNC) is ignored: it applies to spool mode "
                "wal only, and the spool is %s",
                settings.spool_fsync,
                settings.spool or "spill (default)",
            )
        if settings.disabled and "disabled" not in self._announced:
            self._announced.add("disabled")
            logger.warning(
                "otel-commerce: OTEL_COMMERCE_DISABLED=true: commerce events are neither recorded nor "
                "delivered (counted as no-ops in stats()['noop'])"
            )
        elif settings.sdk_disabled and not settings.disabled and "sdk_disabled" not in self._announced:
            self._announced.add("sdk_disabled")
            logger.warning(
                "otel-commerce: OTEL_SDK_DISABLED=true: no OTel log records, span events or metrics of ours; "
                "commerce events are still delivered, directly (set OTEL_COMMERCE_DISABLED=true to stop them)"
            )

    @property
    def engine(self) -> DeliveryEngine | None:
        if not self._engine_built:
            with self._lock:
                if not self._engine_built:
                    try:
                        self._engine = build_engine(self.settings, self.report_error)
                        if self._engine is not None and _exit.exit_in_progress():
                            # built after the exit work took its list of engines: nobody would shut it
                            # down; closed now, its events take the late path (_late)
                            self._engine.shutdown(0.0)
                        elif self._engine is not None:
                            _hook_process(self.settings)
                    except Exception as exc:  # e.g. OTEL_COMMERCE_QUEUE_SIZE=0: never raise into a handler
                        logger.error("otel-commerce: cannot build the delivery engine, events are disabled: %s", exc)
                        self._engine = None
                        self._disabled_by = exc
                    self._engine_built = True
        return self._engine

    def install(self, settings: Settings, engine: DeliveryEngine | None) -> DeliveryEngine | None:
        """Replace the settings and engine (the old engine is flushed and shut down). Returns the old one."""
        with self._lock:
            old = self._engine if self._engine_built else None
            self._settings = settings
            self._engine = engine
            self._engine_built = True
            self._noop_warned = False
            self._announce(settings)
        if engine is not None:
            _hook_process(settings)
        return old

    def apply_settings(self, settings: dict[str, Any]) -> Settings:
        """Resolve ``settings`` over the environment, build and install their engine; the settings in force.

        The old engine is flushed and shut down. Raises ``ConfigurationError`` for invalid settings.
        """
        resolved = Settings.from_env(**settings)
        engine = build_engine(resolved, self.report_error)
        old = self.install(resolved, engine)
        if old is not None and old is not engine:
            old.shutdown(5.0)
            if engine is not None:  # what the old engine spilled at its shutdown is replayed now, not at the next start
                engine.adopt_again()
        return resolved

    def reset(self) -> None:
        """Forget everything (settings re-read from env next time); shuts the engine down."""
        old = self.install(Settings(), None)
        with self._lock:
            self._settings = None
            self._engine_built = False
            self.on_error.clear()
        if old is not None:
            old.shutdown(5.0)

    def active(self) -> bool:
        """False when nothing could observe an event: no engine, no capture, no OTel SDK installed.

        The decorator's fast path (a few attribute reads); a no-op is still counted.
        ``OTEL_COMMERCE_DISABLED=true`` makes it False whatever is installed.
        """
        settings = self._settings  # read directly once resolved: this runs on every decorated call
        if (settings if settings is not None else self.settings).disabled:
            self.counters["noop"] += 1
            return False
        if self.captures or (self._engine if self._engine_built else self.engine) is not None:
            return True
        if any(p is not None for p in _sdk.installed_providers()):
            return True
        self.counters["noop"] += 1
        if not self._noop_warned:
            self._warn_noop()
        return False

    # ---- delivery ---------------------------------------------------------------------------
    def deliver(self, pending: Pending) -> bool:
        """Hand an event to captures and the engine; a counted, warned-once no-op without sinks."""
        if self.settings.disabled:
            self.counters["noop"] += 1
            return False
        delivered = False
        if self.captures and pending.event is not None:
            from .._model import apply_marketing

            apply_marketing(pending.event, pending.items)
            for capture in self.captures:
                capture.append(pending.event)
            delivered = True
        engine = self.engine
        if engine is not None:
            engine.submit(pending)
            return True
        if not delivered:
            self.counters["noop"] += 1
            _metrics.count("dropped", reason="no_sink", via=pending.via)
            if not self._noop_warned:
                self._warn_noop()
        return delivered

    def _warn_noop(self) -> None:
        self._noop_warned = True
        logger.warning(
            "otel-commerce: an event was recorded but no sink is configured; set "
            "OTEL_COMMERCE_NATS_URL and/or OTEL_COMMERCE_COLLECTOR_ENDPOINT or call "
            "otel_commerce.configure(...). Further events are counted silently."
        )

    def report_error(self, exc: BaseException, pending: Pending | None = None) -> None:
        """Count a telemetry failure and pass it to every on_error callback (their errors are logged)."""
        self.counters["errors"] += 1
        for cb in list(self.on_error):
            try:
                cb(exc, pending)
            except Exception:
                logger.exception("otel-commerce: an on_error callback raised")

    def flush(self, timeout_seconds: float | None = None) -> bool:
        engine = self._engine if self._engine_built else None
        return True if engine is None else engine.flush(timeout_seconds)

    def exit_budget(self, seconds: float | None) -> float:
        """Seconds a flush may take: ``seconds`` capped by what is left of the exit deadline (see ``_slot``)."""
        left = _exit.remaining()
        if seconds is None:
            if left is None and _exit.interpreter_exiting():
                _exit.begin("OTel SDK shutdown at exit")
                left = _exit.remaining()
            return _exit.exit_timeout() if left is None else left
        return seconds if left is None else min(seconds, left)

    def _after_fork(self) -> None:
        self._lock = threading.RLock()


RUNTIME = Runtime()
_slot.fill(RUNTIME)  # how _record and _otel reach it (they cannot import this layer)


def _flush_providers_at_exit() -> None:
    """Exit work, before the engines shut down: flush the global OTel providers into the engine.

    Providers created before otel_commerce was imported run their own exit hooks after ours (atexit
    is LIFO): records still in their batch processors must reach the engine first. They get only
    what is left of the exit deadline.
    """
    engine = RUNTIME._engine if RUNTIME._engine_built else None
    if engine is None:
        return
    # Providers created before otel_commerce was imported run their exit hooks after this one: flush
    # them first, so records still in their batch processors reach the engine before it stops.
    for provider in _sdk.installed_providers():
        flush = getattr(provider, "force_flush", None)
        left = _exit.remaining()
        if flush is None or (left is not None and left <= 0):
            continue
        try:
            flush(int((left if left is not None else _exit.exit_timeout()) * 1000))
        except Exception:
            logger.warning("otel-commerce: flushing an OTel provider at exit failed", exc_info=True)


def _shutdown_engines_at_exit() -> None:
    """Exit work, after the providers' flush: every engine with an exit hook, in parallel, within the deadline.

    What is not delivered by then is spooled when the spool is on, else counted and logged at WARNING
    (``DeliveryEngine.shutdown``).
    """
    shutdown_all(exit_engines(), _exit.remaining)


_exit.register_exit_work(_flush_providers_at_exit, order=0)
_exit.register_exit_work(_shutdown_engines_at_exit, order=10)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=RUNTIME._after_fork)
