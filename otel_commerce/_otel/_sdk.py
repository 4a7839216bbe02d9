"""The one place that touches the OpenTelemetry SDK's private surface (``tests/test_sdk_contract.py``).

The SDK has no public way to list a provider's processors or to ask whether a global provider was set,
and its logs signal still lives in ``opentelemetry.sdk._logs``. Everything of that kind that we read is
here, behind small functions, so that an SDK release that moves an attribute breaks one module and its
contract tests (run against the minimum supported and the newest released SDK by ``.ci/run``) instead
of failing silently elsewhere. Every reader degrades to "nothing found" rather than raising.

``emit_record`` builds the SDK's record for ``record_event`` when another processor shares the provider,
with the attribute cleaning done here for JSON-shaped values (the SDK's generic one costs about half a
bare ``emit`` for a nested ``data`` map); without the private names it needs, the SDK cleans as usual.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import _logs, trace
from opentelemetry import attributes as _attributes
from opentelemetry._logs import LogRecord
from opentelemetry._logs import _internal as _logs_internal
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk._logs import Logger, LoggerProvider, LogRecordProcessor, ReadableLogRecord, ReadWriteLogRecord
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
    "clean_attributes",
    "emit_record",
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


_SCALARS = frozenset((str, int, float, bool, type(None)))
_sdk_clean: Any = getattr(_attributes, "_clean_attribute_value", None)
#: emit_record's own cleaning needs both private names; without them it lets the SDK clean
_CLEAN_OWN = _sdk_clean is not None and isinstance(getattr(BoundedAttributes(), "_dict", None), dict)


def _clean_value(value: Any) -> Any:
    t = type(value)
    if t in _SCALARS:
        return value
    if t is dict:
        for k in value:
            if type(k) is not str or not k:  # the SDK drops / converts such keys, with its warnings
                return _sdk_clean(value, None)
        return {k: _clean_value(v) for k, v in value.items()}
    if t is list or t is tuple:
        return tuple([_clean_value(v) for v in value])
    return _sdk_clean(value, None)  # anything else: exactly what the SDK does with it


def clean_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """What the SDK's attribute cleaning (``opentelemetry.attributes._clean_attribute_value``, private, with
    no value length limit) returns for ``attributes``, without its generic per-value checks.

    JSON-shaped values (str / int / float / bool / None, dicts with non-empty str keys, lists / tuples)
    are copied the way the SDK copies them — dicts into new dicts, sequences into tuples; anything else
    (another mapping or sequence type, an empty or non-str key, bytes, other objects) goes through the
    SDK's own function, so the result, and its warnings, are the SDK's. ``tests/test_sdk_contract.py``
    checks the two agree (hypothesis) on the SDK under test.
    """
    return {k: _clean_value(v) for k, v in attributes.items()}


def _cleaned_record(record: LogRecord, logger: Logger, limits: Any) -> ReadWriteLogRecord:
    """The ``ReadWriteLogRecord`` the SDK's ``Logger.emit`` would make of ``record``, whose attributes already went
    through :func:`clean_attributes`: wrapped in the ``BoundedAttributes`` its ``__post_init__`` would make,
    without cleaning them a second time (sets ``BoundedAttributes._dict``, private). A plain
    ``ReadWriteLogRecord`` (its dataclass fields set, ``__post_init__`` skipped), not a subclass: other
    processors are handed the class the SDK hands them."""
    bounded = BoundedAttributes(
        maxlen=limits.max_log_record_attributes,
        attributes=None,
        immutable=False,
        max_value_len=limits.max_log_record_attribute_length,
        extended_attributes=True,
    )
    bounded._dict = record.attributes  # type: ignore[assignment]
    record.attributes = bounded
    rw: ReadWriteLogRecord = object.__new__(ReadWriteLogRecord)
    rw.log_record = record
    rw.resource = logger.resource
    rw.instrumentation_scope = logger.instrumentation_scope
    rw.limits = limits
    return rw


def emit_record(logger: object, record: LogRecord) -> None:
    """``logger.emit(record)``, the attributes cleaned by :func:`clean_attributes` when the SDK's own cleaning
    would give the same result: an SDK ``Logger`` (exactly), no attribute value length limit, no more
    attributes than the count limit, a dict of attributes and no exception on the record. Otherwise the
    SDK cleans as usual. Reads ``Logger._log_record_limits`` (private); the public ``resource`` and
    ``instrumentation_scope`` properties give the rest of what ``Logger.emit`` puts in the record.

    Why: the SDK's generic cleaning costs about half a bare ``emit`` for an event with a nested ``data``
    map and items (README "Benchmarks", row (b)).
    """
    attributes = record.attributes
    limits = getattr(logger, "_log_record_limits", None) if type(logger) is Logger and _CLEAN_OWN else None
    if (
        limits is None
        or limits.max_log_record_attribute_length is not None
        or type(attributes) is not dict
        or record.exception is not None
        or (limits.max_log_record_attributes is not None and len(attributes) > limits.max_log_record_attributes)
    ):
        logger.emit(record)  # type: ignore[attr-defined]
        return
    assert isinstance(logger, Logger)
    record.attributes = clean_attributes(attributes)
    logger.emit(_cleaned_record(record, logger, limits))  # type: ignore[arg-type]  # Logger.emit takes a ReadWriteLogRecord as it is (its code)


def current_span_source() -> tuple[Any, str] | None:
    """``(get, key)`` such that ``get().get(key)`` is what ``trace.get_current_span()`` reads before its checks:
    the current context's getter (``ContextVar.get`` of ``opentelemetry.context._RUNTIME_CONTEXT._current_context``,
    private) and the current-span key (``opentelemetry.trace.propagation._SPAN_KEY``, private). ``build_pending``
    reads the span so in ~0.03 µs instead of ~0.2 µs (three calls through the context API). None when the
    runtime context is not the API's contextvars one (``OTEL_PYTHON_CONTEXT``) or a name moved: the caller then
    calls ``trace.get_current_span()``."""
    from contextvars import ContextVar

    from opentelemetry import context as _context
    from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
    from opentelemetry.trace import propagation as _propagation

    runtime = getattr(_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    key = getattr(_propagation, "_SPAN_KEY", None)
    if (
        type(runtime) is not ContextVarsRuntimeContext  # exactly: its get_current() is var.get()
        or type(var) is not ContextVar
        or type(key) is not str
    ):
        return None
    return var.get, key
