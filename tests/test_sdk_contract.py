"""Contract tests of ``otel_commerce/_otel/_sdk.py``: every private SDK attribute we read still means what
we think, on the SDK under test (``.ci/run`` runs this file against the minimum supported and the newest
released ``opentelemetry-sdk``). A failure here names the adapter function to fix — not a silent loss."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_commerce import CommerceLogRecordProcessor
from otel_commerce._otel import _sdk
from otel_commerce._record._recorder import CommerceLogRecord

ROOT = Path(__file__).resolve().parents[1]


def test_log_processors_lists_what_was_added_in_order() -> None:
    lp = LoggerProvider(shutdown_on_exit=False)
    assert _sdk.log_processors(lp) == []
    first, second = SimpleLogRecordProcessor(InMemoryLogRecordExporter()), CommerceLogRecordProcessor()
    lp.add_log_record_processor(first)
    lp.add_log_record_processor(second)
    assert _sdk.log_processors(lp) == [first, second]


def test_span_processors_lists_what_was_added_in_order() -> None:
    tp = TracerProvider(shutdown_on_exit=False)
    assert _sdk.span_processors(tp) == []
    sp = SimpleSpanProcessor(InMemorySpanExporter())
    tp.add_span_processor(sp)
    assert _sdk.span_processors(tp) == [sp]


def test_processors_see_our_record_object() -> None:
    """Claim by reference: the record our processor (and a batch exporter) sees carries our Pending."""
    seen: list[object] = []

    class Spy(CommerceLogRecordProcessor):
        def on_emit(self, log_record):  # type: ignore[no-untyped-def]
            seen.append(getattr(log_record.log_record, "commerce_pending", None))

    exporter = InMemoryLogRecordExporter()
    lp = LoggerProvider(shutdown_on_exit=False)
    lp.add_log_record_processor(Spy())
    lp.add_log_record_processor(BatchLogRecordProcessor(exporter))
    record = CommerceLogRecord(event_name="commerce.x", body=None, attributes={"a": 1})
    marker = object()
    record.commerce_pending = marker  # type: ignore[assignment]
    lp.get_logger("t").emit(record)
    lp.force_flush()
    assert seen == [marker]
    [exported] = exporter.get_finished_logs()
    assert getattr(exported.log_record, "commerce_pending", None) is marker


GLOBALS = textwrap.dedent(
    """
    import json
    from opentelemetry import _logs, trace
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.trace import TracerProvider
    from otel_commerce._otel import _sdk

    before = _sdk.installed_providers() == (None, None) and _sdk.sdk_logger_provider() is None
    before = before and _sdk.installed_logger_provider() is None
    _logs.get_logger_provider(); trace.get_tracer_provider()  # the proxies do not count as installed
    still = _sdk.installed_providers() == (None, None)
    lp, tp = LoggerProvider(), TracerProvider()
    _logs.set_logger_provider(lp); trace.set_tracer_provider(tp)
    after = _sdk.installed_providers() == (lp, tp) and _sdk.sdk_logger_provider() is lp
    after = after and _sdk.installed_logger_provider() is lp
    print(json.dumps([before, still, after]))
    """
)


def test_installed_providers_reads_the_globals(tmp_path: Path) -> None:
    script = tmp_path / "globals.py"
    script.write_text(GLOBALS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [True, True, True]


def test_ci_minimum_sdk_is_pyprojects_lower_bound() -> None:
    """.ci/run's second pass pins the minimum the package claims to support."""
    lower = re.search(r'"opentelemetry-sdk>=([\d.]+),', (ROOT / "pyproject.toml").read_text())
    pinned = re.search(r"^SDK_MIN=([\d.]+)$", (ROOT / ".ci" / "run").read_text(), re.M)
    assert lower and pinned
    assert tuple(map(int, pinned.group(1).split("."))) == (*map(int, lower.group(1).split(".")), 0)[:3]


def test_logger_processors_is_the_tuple_emit_calls_replaced_on_add() -> None:
    """``logger_processors``: what an SDK logger's emit would call; a new tuple object after each add
    (``record_event``'s fast path caches on that identity); None for a disabled logger or a non-SDK one."""
    from opentelemetry.sdk._logs._internal import _disable_logger_configurator

    lp = LoggerProvider(shutdown_on_exit=False)
    logger = lp.get_logger("t")
    ours = CommerceLogRecordProcessor()
    lp.add_log_record_processor(ours)
    before = _sdk.logger_processors(logger)
    assert before == (ours,)
    assert _sdk.logger_processors(logger) is before  # stable while nothing is added
    other = SimpleLogRecordProcessor(InMemoryLogRecordExporter())
    lp.add_log_record_processor(other)
    after = _sdk.logger_processors(logger)
    assert after == (ours, other) and after is not before
    lp._set_logger_configurator(logger_configurator=_disable_logger_configurator)
    assert _sdk.logger_processors(lp.get_logger("t")) is None  # emit would return before any processor
    assert _sdk.logger_processors(object()) is None


# ------------------------------------------------------------------ emit_record: our attribute cleaning
from typing import Any  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from opentelemetry.attributes import BoundedAttributes, _clean_attribute_value  # noqa: E402
from opentelemetry.sdk._logs import LogRecordLimits  # noqa: E402


def typed(value: Any) -> Any:
    """``value`` with every container's type made part of it (== on the result compares types too)."""
    if isinstance(value, dict):
        return ("dict", {k: typed(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [typed(v) for v in value])
    return (type(value).__name__, value)


_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8), st.binary(max_size=4))
_keys = st.one_of(st.text(max_size=6), st.integers(0, 3))  # "" and non-str keys: the SDK drops / converts them
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(_keys, inner, max_size=4),
        st.frozensets(st.integers(), max_size=3),  # neither a Sequence nor a Mapping: the SDK's str()
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=10), _values, max_size=6))
def test_clean_attributes_is_the_sdks_cleaning(attributes: dict[str, Any]) -> None:
    """``clean_attributes`` (record_event's record beside another processor) returns what the SDK's
    ``_clean_attribute_value`` returns, container types included, for JSON-shaped and other values."""
    assert typed(_sdk.clean_attributes(attributes)) == typed(_clean_attribute_value(attributes, None))


def _emitted(limits: LogRecordLimits | None, attributes: dict[str, Any], fast: bool) -> Any:
    exporter = InMemoryLogRecordExporter()
    lp = LoggerProvider(shutdown_on_exit=False, log_record_limits=limits)
    lp.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = lp.get_logger("t")
    record = CommerceLogRecord(event_name="commerce.x", body=None, attributes=attributes)
    if fast:
        _sdk.emit_record(logger, record)
    else:
        logger.emit(record)
    [exported] = exporter.get_finished_logs()
    return exported


def test_emit_record_gives_exporters_the_record_the_sdk_would_build() -> None:
    """Same attributes (types included), a ``BoundedAttributes`` with the SDK's limits, nothing dropped;
    with a value length limit or a too-small count limit the SDK cleans (strings cut, attributes dropped)."""
    attrs = {"commerce.id": "o-1", "commerce.data": {"items": [{"sku": "a", "qty": 2}], "note": "x" * 40}, "n": 1.5}
    for limits in (None, LogRecordLimits(max_attributes=64), LogRecordLimits(max_attribute_length=16)):
        fast, sdk = _emitted(limits, dict(attrs), True), _emitted(limits, dict(attrs), False)
        got, want = fast.log_record.attributes, sdk.log_record.attributes
        assert isinstance(got, BoundedAttributes)
        assert typed(dict(got)) == typed(dict(want))
        assert (got.maxlen, got.max_value_len, got.dropped) == (want.maxlen, want.max_value_len, want.dropped)
        assert fast.resource is sdk.resource or fast.resource == sdk.resource
        assert fast.instrumentation_scope == sdk.instrumentation_scope
        got["added"] = 1  # writable, like the SDK's
    cut = _emitted(LogRecordLimits(max_attribute_length=16), dict(attrs), True)
    assert cut.log_record.attributes["commerce.data"]["note"] == "x" * 16
    few = _emitted(LogRecordLimits(max_attributes=2), dict(attrs), True)
    assert few.log_record.attributes.dropped == 1 and len(few.log_record.attributes) == 2


def test_emit_record_reads_the_loggers_limits() -> None:
    """``Logger._log_record_limits`` (private) is the provider's ``log_record_limits``; the two private names
    our own cleaning needs (``_clean_attribute_value``, ``BoundedAttributes._dict``) exist, so it is used."""
    assert _sdk._CLEAN_OWN
    limits = LogRecordLimits(max_attributes=7, max_attribute_length=9)
    logger = LoggerProvider(shutdown_on_exit=False, log_record_limits=limits).get_logger("t")
    assert logger._log_record_limits is limits  # type: ignore[attr-defined]


def test_our_record_copies_like_copy_copy_of_an_api_record() -> None:
    """``CommerceLogRecord.__copy__`` (the batch processor's ``copy.copy``) gives what the reduce protocol
    gives for the API's ``LogRecord``: a new object with the same instance attributes, shared values."""
    import copy

    from opentelemetry._logs import LogRecord

    kwargs: dict[str, Any] = {"event_name": "commerce.x", "body": {"b": 1}, "attributes": {"a": [1]}, "timestamp": 5, "observed_timestamp": 6}
    ours, api = CommerceLogRecord(**kwargs), LogRecord(**kwargs)
    ours.commerce_pending = marker = object()  # type: ignore[assignment]
    mine, theirs = copy.copy(ours), copy.copy(api)
    assert type(mine) is CommerceLogRecord and mine is not ours and theirs is not api
    assert {k: v for k, v in vars(mine).items() if k != "commerce_pending"} == vars(theirs) | {"context": mine.context}
    assert mine.attributes is ours.attributes and mine.commerce_pending is marker
    assert set(vars(ours)) == set(vars(api)) | {"commerce_pending"}  # the API record keeps its state in __dict__


def test_read_write_log_record_fields_are_the_four_emit_record_sets() -> None:
    """``emit_record`` builds a ``ReadWriteLogRecord`` without its ``__init__`` (its ``__post_init__`` would clean
    the attributes again) and sets these four dataclass fields: a field added by an SDK release fails here."""
    import dataclasses

    from opentelemetry.sdk._logs import ReadWriteLogRecord

    names = [f.name for f in dataclasses.fields(ReadWriteLogRecord)]
    assert names == ["log_record", "resource", "instrumentation_scope", "limits"]


# ------------------------------------------------- record_event's record: built without the constructors
def test_info_log_record_is_what_the_api_constructor_makes() -> None:
    """``info_log_record`` sets the API ``LogRecord``'s instance attributes directly: the same names and, but for
    ``observed_timestamp`` (now), the same values as the constructor's, trace ids from the current span."""
    from opentelemetry import trace
    from opentelemetry._logs import LogRecord, SeverityNumber

    assert _sdk._RECORD_OWN  # the SDK under test has the twelve attributes: the fast path is used
    tp = TracerProvider(shutdown_on_exit=False)
    attrs = {"commerce.id": "o-1"}
    with tp.get_tracer("t").start_as_current_span("s") as span:
        fast = _sdk.info_log_record(CommerceLogRecord, 123, "commerce.x", attrs)
        api = LogRecord(timestamp=123, event_name="commerce.x", attributes=attrs, body=None,
                        severity_number=SeverityNumber.INFO, severity_text="INFO")  # fmt: skip
    assert type(fast) is CommerceLogRecord
    assert set(vars(fast)) == set(vars(api)) == _sdk._RECORD_FIELDS
    differ = {k for k in vars(api) if vars(fast)[k] != vars(api)[k]}
    assert differ <= {"observed_timestamp"} and 0 < fast.observed_timestamp <= api.observed_timestamp
    assert fast.trace_id == span.get_span_context().trace_id and fast.attributes is attrs
    outside = _sdk.info_log_record(CommerceLogRecord, 1, "commerce.x", {})
    assert (outside.trace_id, outside.span_id) == (0, 0) and outside.trace_flags == trace.TraceFlags.DEFAULT


def test_bounded_sets_what_the_sdks_bounded_attributes_has() -> None:
    """``_bounded`` (the record's ``BoundedAttributes`` without ``__init__``) sets every instance attribute the
    SDK's constructor sets, with the limits' values: writable, counting, locking like the SDK's."""
    from opentelemetry.attributes import BoundedAttributes
    from opentelemetry.sdk._logs import LogRecordLimits

    assert _sdk._BOUNDED_OWN
    limits = LogRecordLimits(max_attributes=3)
    fast = _sdk._bounded({"a": 1}, limits)
    sdk = BoundedAttributes(maxlen=3, attributes={"a": 1}, immutable=False, max_value_len=None, extended_attributes=True)
    assert set(vars(fast)) == set(vars(sdk))
    assert {k: v for k, v in vars(fast).items() if k != "_lock"} == {k: v for k, v in vars(sdk).items() if k != "_lock"}
    for bounded in (fast, sdk):
        bounded["b"], bounded["c"], bounded["d"] = 2, 3, 4  # the fourth is dropped by maxlen
        assert dict(bounded) == {"b": 2, "c": 3, "d": 4} and bounded.dropped == 1


_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(min_size=1, max_size=6), inner, max_size=4)),
    max_leaves=20,
)


def _untupled(value: Any) -> Any:
    if isinstance(value, dict):
        return ("dict", {k: _untupled(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return ("seq", [_untupled(v) for v in value])
    return (type(value).__name__, value)


def _shares(a: Any, b: Any) -> bool:
    if isinstance(a, (dict, list)) and a is b:
        return True
    if isinstance(a, dict):
        return any(_shares(a[k], b[k]) for k in a)
    return isinstance(a, list) and any(_shares(x, y) for x, y in zip(a, b, strict=True))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=10), _json, max_size=6))
def test_json_copy_is_an_equal_unshared_copy_and_the_sdks_cleaning_but_for_tuples(data: dict[str, Any]) -> None:
    """``json_copy`` of an event's JSON data (int64 ints, finite floats, str keys): equal to it container for
    container (``typed``), sharing no container with it, and what the SDK's cleaning gives with its tuples
    read as lists (exporters encode both as arrays)."""
    copy = _sdk.json_copy(data)
    assert typed(copy) == typed(data) and copy is not data and not _shares(copy, data)
    assert _untupled(copy) == _untupled(_clean_attribute_value(data, None))


def test_json_copy_is_none_for_what_orjson_cannot_encode() -> None:
    """Then record_event falls back to the SDK's cleaning (``emit_record`` without ``copied``)."""
    assert _sdk.json_copy({"n": 2**64}) is None
    assert _sdk.json_copy({"s": "\ud800"}) is None
    assert _sdk.json_copy({"b": b"x"}) is None


class _Order(_sdk.LogRecordProcessor):
    def __init__(self, name: str, calls: list[tuple[str, Any]]) -> None:
        self.name, self.calls = name, calls

    def on_emit(self, log_record: Any) -> None:
        self.calls.append((self.name, log_record))

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def test_emit_record_calls_the_processors_as_logger_emit_does() -> None:
    """Behind the SDK's default multi-processor ``emit_direct`` calls each processor's ``on_emit`` itself: all of
    them, in order, with one record; none when a logger configuration disabled the logger; behind the
    concurrent multi-processor ``direct_emit`` declines and ``emit_record``'s ``Logger.emit`` does it (same calls)."""
    from opentelemetry.sdk._logs._internal import ConcurrentMultiLogRecordProcessor

    for multi in (None, ConcurrentMultiLogRecordProcessor()):
        calls: list[tuple[str, Any]] = []
        lp = LoggerProvider(shutdown_on_exit=False, multi_log_record_processor=multi)
        for name in ("first", "second", "third"):
            lp.add_log_record_processor(_Order(name, calls))
        logger = lp.get_logger("t")
        assert (type(logger._multi_log_record_processor) is _sdk._SYNC_MULTI) is (multi is None)  # type: ignore[attr-defined]
        record = CommerceLogRecord(event_name="commerce.x", body=None, attributes={"a": 1})
        direct = _sdk.direct_emit(logger)
        assert (direct is None) is (multi is not None)
        if direct is not None:
            _sdk.emit_direct(direct, record)
        else:
            _sdk.emit_record(logger, record)
        assert [n for n, _ in calls] == ["first", "second", "third"]
        assert len({id(r) for _, r in calls}) == 1 and dict(calls[0][1].log_record.attributes) == {"a": 1}
    from opentelemetry.sdk._logs._internal import _disable_logger_configurator

    calls = []
    lp = LoggerProvider(shutdown_on_exit=False)
    lp.add_log_record_processor(_Order("only", calls))
    lp._set_logger_configurator(logger_configurator=_disable_logger_configurator)  # type: ignore[attr-defined]
    _sdk.emit_record(lp.get_logger("t"), CommerceLogRecord(event_name="commerce.x", body=None, attributes={"a": 1}))
    assert calls == []


def test_emit_record_counts_in_the_sdks_own_metrics() -> None:
    """With the SDK's internal metrics on (``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED``), a record emit_direct hands
    the processors is counted in ``otel.sdk.log.created``, as ``Logger.emit`` counts it."""
    code = textwrap.dedent(
        """
        import json
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from otel_commerce._otel import _sdk
        from otel_commerce._record._recorder import CommerceLogRecord

        reader = InMemoryMetricReader()
        lp = LoggerProvider(shutdown_on_exit=False, meter_provider=MeterProvider(metric_readers=[reader]))
        lp.add_log_record_processor(SimpleLogRecordProcessor(InMemoryLogRecordExporter()))
        logger = lp.get_logger("t")
        direct = _sdk.direct_emit(logger)
        assert direct is not None and direct.count is not None  # the counting LoggerMetrics: called
        _sdk.emit_direct(direct, CommerceLogRecord(event_name="commerce.x", body=None, attributes={"a": 1}))
        logger.emit(CommerceLogRecord(event_name="commerce.x", body=None, attributes={"a": 1}))
        points = {m.name: sum(p.value for p in m.data.data_points)
                  for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
        print(json.dumps(points))
        """
    )
    env = dict(os.environ, OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED="true")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["otel.sdk.log.created"] == 2


def test_direct_emit_applies_only_where_it_does_what_logger_emit_does() -> None:
    """``direct_emit`` reads the SDK logger's limits, processors, enabled flag and SDK counter (private names):
    for the default provider it gives the logger's own processor tuple; it declines (None: ``Logger.emit``)
    for a value-length limit, the concurrent multi-processor and anything not an SDK ``Logger``; a disabled
    logger gives no processors."""
    from opentelemetry.sdk._logs import LogRecordLimits
    from opentelemetry.sdk._logs._internal import ConcurrentMultiLogRecordProcessor, _disable_logger_configurator

    lp = LoggerProvider(shutdown_on_exit=False, log_record_limits=LogRecordLimits(max_attributes=9))
    lp.add_log_record_processor(_Order("a", []))
    logger = lp.get_logger("t")
    direct = _sdk.direct_emit(logger)
    assert direct is not None and direct.chain is _sdk.logger_processors(logger) and direct.maxlen == 9
    assert direct.resource is logger.resource and direct.scope == logger.instrumentation_scope
    assert _sdk.direct_emit(LoggerProvider(shutdown_on_exit=False).get_logger("t")).maxlen == 128  # type: ignore[union-attr]
    cut = LoggerProvider(shutdown_on_exit=False, log_record_limits=LogRecordLimits(max_attribute_length=8))
    assert _sdk.direct_emit(cut.get_logger("t")) is None
    concurrent = LoggerProvider(shutdown_on_exit=False, multi_log_record_processor=ConcurrentMultiLogRecordProcessor())
    assert _sdk.direct_emit(concurrent.get_logger("t")) is None
    assert _sdk.direct_emit(object()) is None
    lp._set_logger_configurator(logger_configurator=_disable_logger_configurator)  # type: ignore[attr-defined]
    off = _sdk.direct_emit(lp.get_logger("t"))
    assert off is not None and off.chain is None


def test_current_span_source_reads_what_get_current_span_reads() -> None:
    """``build_pending`` reads the current span as ``get().get(key)`` (private API names): the same object
    ``trace.get_current_span()`` returns whenever a ``Span`` is current (None outside any span), in threads'
    and tasks' own contexts too (a ContextVar), through attach / detach and nested spans."""
    import asyncio
    import threading

    from opentelemetry import context, trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext

    source = _sdk.current_span_source()
    assert source is not None, "the API's contextvars runtime context or its span key moved: update _sdk"
    get, key = source

    def current() -> object:
        return get().get(key)

    assert current() is None and trace.get_current_span() is trace.INVALID_SPAN
    tracer = TracerProvider().get_tracer("contract")
    with tracer.start_as_current_span("outer") as outer:
        assert current() is outer is trace.get_current_span()
        with tracer.start_as_current_span("inner") as inner:
            assert current() is inner is trace.get_current_span()
        assert current() is outer
        seen: list[object] = []
        thread = threading.Thread(target=lambda: seen.append(current()))  # a new thread: an empty context
        thread.start()
        thread.join()
        assert seen == [None]

        async def in_task() -> object:
            return current()

        assert asyncio.run(in_task()) is outer  # a task copies the context it is created in
    remote = NonRecordingSpan(SpanContext(0x1, 0x2, True))
    token = context.attach(trace.set_span_in_context(remote))
    try:
        assert current() is remote is trace.get_current_span()
        inner_token = context.attach(context.set_value(key, "not a span"))  # get_current_span's check
        try:
            assert current() == "not a span" and trace.get_current_span() is trace.INVALID_SPAN
        finally:
            context.detach(inner_token)
    finally:
        context.detach(token)
    assert current() is None


def test_emit_direct_hands_processors_the_objects_the_sdk_makes() -> None:
    """``emit_direct`` builds the ``ReadWriteLogRecord`` and its ``BoundedAttributes`` attribute by attribute: the
    same instance attributes as the SDK's constructors give, the logger's resource read at the emit, the SDK's
    no-op metrics not called (``count`` None) and the counting ones called."""
    from opentelemetry.attributes import BoundedAttributes
    from opentelemetry.sdk._logs import LogRecordLimits, ReadWriteLogRecord
    from opentelemetry.sdk.resources import Resource

    calls: list[tuple[str, Any]] = []
    lp = LoggerProvider(shutdown_on_exit=False, log_record_limits=LogRecordLimits(max_attributes=5))
    lp.add_log_record_processor(_Order("seen", calls))
    logger = lp.get_logger("t")
    direct = _sdk.direct_emit(logger)
    assert direct is not None and direct.count is None
    record = CommerceLogRecord(event_name="commerce.x", body=None, attributes={"a": 1})
    _sdk.emit_direct(direct, record)
    [(_, rw)] = calls
    sdk_rw = ReadWriteLogRecord(CommerceLogRecord(event_name="commerce.x", body=None, attributes={"a": 1}), logger.resource, logger.instrumentation_scope, logger._log_record_limits)  # type: ignore[attr-defined]  # fmt: skip
    assert type(rw) is ReadWriteLogRecord and set(vars(rw)) == set(vars(sdk_rw))
    bounded = rw.log_record.attributes
    assert type(bounded) is BoundedAttributes and set(vars(bounded)) == set(vars(sdk_rw.log_record.attributes))
    assert (dict(bounded), bounded.maxlen, bounded.max_value_len, bounded.dropped) == ({"a": 1}, 5, None, 0)
    logger._resource = Resource.create({"service.instance.id": "new"})  # type: ignore[attr-defined]  # as after a fork
    _sdk.emit_direct(direct, CommerceLogRecord(event_name="commerce.x", body=None, attributes={"a": 1}))
    assert calls[-1][1].resource is logger.resource
