"""Round 5 adversarial checks: ``record_event`` beside other processors (the record built without constructors,
its data an orjson copy, the processors called one level below ``Logger.emit``) against the SDK's own path."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
import warnings
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.sdk._logs import ReadableLogRecord
from otel_fixtures import global_sdk

from otel_commerce import EventValidationError, Settings, record_event
from otel_commerce._record._recorder import event_attributes
from otel_commerce._runtime import RUNTIME
from otel_commerce.testing import capture_events

_ENV = {**os.environ, "OTEL_TRACES_EXPORTER": "none", "OTEL_COMMERCE_NATS_URL": "", "OTEL_SDK_DISABLED": "false"}


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, env=_ENV
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


_FORK_APP = """
    import json, os
    from opentelemetry import _logs
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    import otel_commerce

    mem = InMemoryLogRecordExporter()
    lp = LoggerProvider(shutdown_on_exit=False)
    lp.add_log_record_processor(SimpleLogRecordProcessor(mem))
    _logs.set_logger_provider(lp)
    otel_commerce.configure()
    otel_commerce.record_event("loyalty.points_earned", organization_id="o", data={"a": 1})  # before the fork
    parent = dict(mem.get_finished_logs()[0].resource.attributes)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        mem.clear()
        otel_commerce.record_event("loyalty.points_earned", organization_id="o", data={"a": 2})
        _logs.get_logger("app").emit(body="a plain log record of the child")
        got = [dict(l.resource.attributes) for l in mem.get_finished_logs()]
        os.write(w, json.dumps(got).encode())
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    with os.fdopen(r) as f:
        child = json.loads(f.read())
    print(json.dumps({"parent": parent, "child": child}))
"""


def test_a_forked_child_records_with_the_childs_resource() -> None:
    """After ``fork()`` the SDK gives the provider's loggers a new resource (a new ``service.instance.id``, the
    process detectors run again). ``record_event`` beside another processor must put the logger's resource of
    *now* on its records, as ``Logger.emit`` does — not the parent's, read once before the fork (a pre-fork
    server recording at start-up would label every worker's events with the parent's instance)."""
    got = json.loads(_run(_FORK_APP))
    ours, plain = got["child"]
    assert ours == plain
    assert ours["service.instance.id"] != got["parent"]["service.instance.id"]


# ----------------------------------------------------- what exporters beside ours get: the SDK's own cleaning
_KEY = st.text(max_size=5)  # empty keys included: validation accepts them, the SDK's cleaning drops them
_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 5e-324, 1.7976931348623157e308, float(2**53 + 1)]),
    st.text(max_size=8),
)
_JSON = st.recursive(
    _SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.tuples(inner, inner), st.dictionaries(_KEY, inner, max_size=4)
    ),
    max_leaves=25,
)
_RESERVED = {"id", "event_id", "trace_id", "span_id", "unix_ms"}


def _sdk_path(readable: Any, event: Any, items: Any) -> Any:
    """The record as the previous code / ``Logger.emit`` made it: the same record, its attributes the event's
    through the SDK's ``BoundedAttributes`` (its cleaning: sequences into tuples, empty keys dropped)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        limits = readable.limits
        attributes = BoundedAttributes(
            maxlen=limits.max_log_record_attributes,
            attributes=event_attributes(event, items, mask=True),
            immutable=False,
            max_value_len=limits.max_log_record_attribute_length,
        )
    record = copy.copy(readable.log_record)
    record.attributes = attributes
    return ReadableLogRecord(record, readable.resource, readable.instrumentation_scope, readable.limits)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.dictionaries(_KEY.filter(lambda k: k not in _RESERVED), _JSON, max_size=6))
def test_exporters_beside_ours_get_what_the_sdks_cleaning_gives(data: dict[str, Any]) -> None:
    """Differential: every event ``record_event`` accepts reaches an exporter beside ours encoded exactly as the
    SDK's own path encodes it — OTLP protobuf (``encode_logs``) and the console exporter's JSON byte for byte.
    A map with an empty key (``{"": 1}``: validation accepts it) is where an orjson copy and the SDK differ:
    the SDK drops the key, with its warning."""
    sdk = global_sdk()
    sdk.clear()
    RUNTIME.install(Settings(), None)
    try:
        with capture_events() as events:
            try:
                record_event("loyalty.points_earned", organization_id="o", id="x", data=data)
            except EventValidationError:
                return
    finally:
        RUNTIME.reset()
    [ours] = sdk.logs.get_finished_logs()
    [event] = events
    theirs = _sdk_path(ours, event, None)
    assert encode_logs([ours]).SerializeToString() == encode_logs([theirs]).SerializeToString()
    assert ours.to_json() == theirs.to_json()
    sdk.clear()


# ----------------------------------------------- processors added while other threads record: the cache's state
_RACE_APP = """
    import json, sys, threading
    from opentelemetry import _logs
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    import otel_commerce
    from otel_commerce._otel import _sdk
    from otel_commerce.testing import capture_events

    lp = LoggerProvider(shutdown_on_exit=False)
    _logs.set_logger_provider(lp)
    otel_commerce.configure()  # our processor alone: record_event builds no record

    def pause_at(code, event, reached, go):
        # a trace function for one thread: wait for `go` when `code` makes `event` ("call" / "return")
        def local(frame, ev, arg):
            if ev == event == "return":
                reached.set(); go.wait(30)
            return local
        def tracer(frame, ev, arg):
            if frame.f_code is code:
                if event == "call":
                    reached.set(); go.wait(30)
                    return None
                return local
            return None
        return tracer

    def recorder(name, tracer):
        def run():
            sys.settrace(tracer)
            otel_commerce.record_event("loyalty.points_earned", organization_id="o", id=name, data={"n": name})
            sys.settrace(None)
        return threading.Thread(target=run)

    a_read, a_go, b_in, b_go = (threading.Event() for _ in range(4))
    with capture_events() as events:
        # A reads the processor tuple (ours alone) and is held there, before it stores anything
        a = recorder("a", pause_at(_sdk.logger_processors.__code__, "return", a_read, a_go))
        a.start(); assert a_read.wait(30)
        mem = InMemoryLogRecordExporter()
        lp.add_log_record_processor(SimpleLogRecordProcessor(mem))  # the application adds its exporter
        # B reads the new tuple and is held while it works out how to call it
        b = recorder("b", pause_at(_sdk.direct_emit.__code__, "call", b_in, b_go))
        b.start(); assert b_in.wait(30)
        a_go.set(); a.join()  # A stores its answers for the old tuple
        b_go.set(); b.join()  # B stores its answers for the new one
        for i in range(3):  # recorded after the exporter was added, on this thread
            otel_commerce.record_event("loyalty.points_earned", organization_id="o", id=f"later-{i}", data={"i": i})
    seen = sorted(l.log_record.attributes["commerce.id"] for l in mem.get_finished_logs())
    delivered = sorted(e.id for e in events)
    print(json.dumps({"seen": seen, "delivered": delivered}))
"""


def test_an_exporter_added_while_threads_record_gets_every_later_event() -> None:
    """Two threads refreshing the logger cache at once — A read the processor tuple before the application added
    its exporter, B after — whatever order they store their answers in, every event recorded after the exporter
    was added reaches it (the cache must not end up holding the new tuple beside A's "our processor alone",
    which would skip the record for every later event), and each event is delivered once."""
    got = json.loads(_run(_RACE_APP))
    assert got["delivered"] == ["a", "b", "later-0", "later-1", "later-2"]
    assert {"b", "later-0", "later-1", "later-2"} <= set(got["seen"])


# ------------------------------------------------------ an instrumentation that wraps Logger.emit / on_emit
_WRAPPED_APP = """
    import functools, json, sys
    import wrapt
    from opentelemetry import _logs
    from opentelemetry.sdk._logs import Logger, LoggerProvider
    from opentelemetry.sdk._logs._internal import SynchronousMultiLogRecordProcessor
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    import otel_commerce
    from otel_commerce._record._recorder import SCHEMA_URL, SCOPE_NAME, SCOPE_VERSION
    from otel_commerce.testing import capture_events

    how = sys.argv[1]
    seen = []

    def tag(record):  # what the instrumentation does with every record it is handed
        seen.append(type(record).__name__)
        if hasattr(record, "log_record"):
            record = record.log_record
        record.attributes = {**(record.attributes or {}), "deployment": "blue"}

    if how == "class":
        plain = Logger.emit
        @functools.wraps(plain)
        def emit(self, record=None, **kwargs):
            tag(record)
            return plain(self, record, **kwargs)
        Logger.emit = emit
    elif how == "wrapt":
        def emit(wrapped, instance, args, kwargs):
            tag(args[0])
            return wrapped(*args, **kwargs)
        wrapt.wrap_function_wrapper("opentelemetry.sdk._logs._internal", "Logger.emit", emit)
    elif how == "on_emit":
        def on_emit(wrapped, instance, args, kwargs):
            tag(args[0])
            return wrapped(*args, **kwargs)
        wrapt.wrap_function_wrapper("opentelemetry.sdk._logs._internal", "SynchronousMultiLogRecordProcessor.on_emit", on_emit)
    mem = InMemoryLogRecordExporter()
    lp = LoggerProvider(shutdown_on_exit=False)
    lp.add_log_record_processor(SimpleLogRecordProcessor(mem))
    if how == "instance":  # a vendor's provider wrapping the emit of each logger it hands out
        logger = lp.get_logger(SCOPE_NAME, SCOPE_VERSION, schema_url=SCHEMA_URL)
        plain = logger.emit
        def emit(record=None, **kwargs):
            tag(record)
            return plain(record, **kwargs)
        logger.emit = emit
    _logs.set_logger_provider(lp)
    otel_commerce.configure()
    with capture_events() as events:
        otel_commerce.record_event("loyalty.points_earned", organization_id="o", id="w", data={"tags": ["x"]})
    [log] = mem.get_finished_logs()
    attrs = dict(log.log_record.attributes)
    print(json.dumps({"seen": seen, "deployment": attrs.get("deployment"), "tags": list(attrs["commerce.data"]["tags"]),
                      "delivered": [e.id for e in events]}))
"""


@pytest.mark.parametrize("how", ["class", "wrapt", "instance", "on_emit"])
def test_an_instrumentation_wrapping_logger_emit_sees_record_events_records(how: str) -> None:
    """An instrumentation that wraps the SDK's ``Logger.emit`` (a plain ``functools.wraps`` patch, ``wrapt``, a
    vendor's provider wrapping each logger's ``emit``) or the multi-processor's ``on_emit`` sees ``record_event``'s
    record beside another processor, as it sees every other record — ``Logger.emit`` wrapped is handed an API
    ``LogRecord`` (the type its signature names) — and the event is delivered once."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_WRAPPED_APP), how],
        capture_output=True,
        text=True,
        timeout=120,
        env=_ENV,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["deployment"] == "blue" and got["tags"] == ["x"] and got["delivered"] == ["w"]
    assert got["seen"] == (["ReadWriteLogRecord"] if how == "on_emit" else ["CommerceLogRecord"])


def test_json_copy_tells_an_empty_key_from_a_key_ending_in_a_quote() -> None:
    """``json_copy`` declines (the SDK's cleaning then runs) exactly when a map has an empty key at any depth; a key
    ending in a quote or a backslash looks alike in the encoding but is copied."""
    from otel_commerce._otel import _sdk

    for data in ({'"': 1}, {'a"': {'\\"': [1]}}, {"\\": ""}, {"k": ['":']}, {"k": '"":'}):
        assert _sdk.json_copy(data) == data
    for data in ({"": 1}, {"a": {"b": [{"": 2}]}}, {'"': {"": None}}):
        assert _sdk.json_copy(data) is None


# ------------------------------------------ set-ups where record_event must hand exporters what Logger.emit does
_SETUP_APP = """
    import json, sys, warnings
    from opentelemetry import _logs
    from opentelemetry.sdk._logs import LoggerProvider, LogRecordLimits
    from opentelemetry.sdk._logs._internal import ConcurrentMultiLogRecordProcessor
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    import otel_commerce
    from otel_commerce.testing import capture_events
    from otel_commerce._record._recorder import CommerceLogRecord, SCHEMA_URL, SCOPE_NAME, SCOPE_VERSION, event_attributes

    setup = sys.argv[1]
    kwargs, conf = {}, {}
    if setup.startswith("count"):  # fewer attributes allowed than ours (9) / exactly as many
        kwargs["log_record_limits"] = LogRecordLimits(max_attributes=int(setup[5:]))
    elif setup == "length":
        kwargs["log_record_limits"] = LogRecordLimits(max_attribute_length=4)
    elif setup == "concurrent":
        kwargs["multi_log_record_processor"] = ConcurrentMultiLogRecordProcessor()
    elif setup in ("envelope", "both"):
        conf = {"log_body": "envelope"} if setup == "envelope" else {"mode": "both"}
    mem = InMemoryLogRecordExporter()
    lp = LoggerProvider(shutdown_on_exit=False, **kwargs)
    lp.add_log_record_processor(SimpleLogRecordProcessor(mem))
    _logs.set_logger_provider(lp)
    otel_commerce.configure(**conf)
    data = {"order_id": "o1", "revenue": 5.0, "currency": "USD", "nested": {"l": ["abcdefgh", 1, {"k": "vvvvvv"}]}}
    with warnings.catch_warnings(record=True) as ours_warned, capture_events() as events:
        warnings.simplefilter("always")
        otel_commerce.record_event("order.completed", organization_id="org", user_id="u", session_id="s", data=data)
    [ours] = mem.get_finished_logs()
    mem.clear()
    logger = lp.get_logger(SCOPE_NAME, SCOPE_VERSION, schema_url=SCHEMA_URL)
    record = CommerceLogRecord(
        timestamp=ours.log_record.timestamp, event_name=ours.log_record.event_name, body=ours.log_record.body,
        attributes=event_attributes(events[0], None, mask=True), severity_text="INFO",
        severity_number=ours.log_record.severity_number,
    )
    with warnings.catch_warnings(record=True) as sdk_warned:
        warnings.simplefilter("always")
        logger.emit(record)  # the SDK's own path
    [sdk] = mem.get_finished_logs()
    def shown(r):
        d = json.loads(r.to_json())
        del d["observed_timestamp"]
        return d
    print(json.dumps({
        "same": shown(ours) == shown(sdk), "dropped": [ours.dropped_attributes, sdk.dropped_attributes],
        "warned": [[w.category.__name__ for w in ws] for ws in (ours_warned, sdk_warned)],
        "delivered": [e.data for e in events],
    }))
"""


@pytest.mark.parametrize("setup", ["plain", "count3", "count9", "count8", "length", "concurrent", "envelope", "both"])
def test_record_events_record_is_what_logger_emit_makes_in_each_set_up(setup: str) -> None:
    """Beside another processor, under the SDK's limits (a count limit below, at and above our attribute count; a
    value-length limit), the concurrent multi-processor, ``log_body=envelope`` and ``mode=both``: the record an
    exporter gets from ``record_event`` is the one ``Logger.emit`` makes of the same attributes (console JSON),
    with the same dropped count and the same warnings; the event is delivered whole (no limit cuts it)."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_SETUP_APP), setup],
        capture_output=True,
        text=True,
        timeout=120,
        env=_ENV,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["same"], got
    assert got["dropped"][0] == got["dropped"][1] == {"count3": 6, "count8": 1}.get(setup, 0)
    assert got["warned"][0] == got["warned"][1]
    assert got["delivered"] == [
        {"order_id": "o1", "revenue": 5.0, "currency": "USD", "nested": {"l": ["abcdefgh", 1, {"k": "vvvvvv"}]}}
    ]


_TOGGLE_APP = """
    import json
    from opentelemetry import _logs
    from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
    from opentelemetry.sdk._logs._internal import _LoggerConfig, _default_logger_configurator
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    import otel_commerce
    from otel_commerce.testing import capture_events

    class Flaky(LogRecordProcessor):  # ahead of the exporter and of ours; raises when told to
        fail = False
        def on_emit(self, log_record):
            if self.fail:
                raise RuntimeError("processor failed")
        def shutdown(self):
            pass
        def force_flush(self, timeout_millis=30000):
            return True

    flaky, mem = Flaky(), InMemoryLogRecordExporter()
    lp = LoggerProvider(shutdown_on_exit=False)
    lp.add_log_record_processor(flaky)
    lp.add_log_record_processor(SimpleLogRecordProcessor(mem))
    _logs.set_logger_provider(lp)
    errors = []
    otel_commerce.configure(on_error=lambda exc, pending: errors.append(str(exc)))
    def record(i):
        otel_commerce.record_event("loyalty.points_earned", organization_id="o", id=str(i), data={"i": i})
    off = lambda scope: _LoggerConfig(is_enabled=not scope.name.startswith("otel_commerce"))
    with capture_events() as events:
        record(0)
        lp._set_logger_configurator(logger_configurator=off)  # our scope disabled at run time
        record(1)
        lp._set_logger_configurator(logger_configurator=_default_logger_configurator)
        record(2)
        flaky.fail = True
        record(3)
        flaky.fail = False
        record(4)
    seen = [r.log_record.attributes["commerce.id"] for r in mem.get_finished_logs()]
    print(json.dumps({"seen": seen, "delivered": [e.id for e in events], "errors": errors}))
"""


def test_a_scope_disabled_at_run_time_and_a_raising_processor() -> None:
    """A logger configuration that disables our scope at run time, then enables it again: no record while it is
    off, records again after; a processor ahead that raises: no record for the exporter behind it (as with
    ``Logger.emit``), the error reported. Every event is delivered exactly once either way."""
    got = json.loads(_run(_TOGGLE_APP))
    assert got == {"seen": ["0", "2", "4"], "delivered": ["0", "1", "2", "3", "4"], "errors": ["processor failed"]}


# ---------------------------------------------------- the record path's small steps equal the general ones
def test_to_unix_ns_is_exact_for_every_kind_of_datetime() -> None:
    """``to_unix_ns``' short path (an aware UTC ``datetime``) gives what the general one gives; naive, other
    zones and a ``datetime`` subclass take the general path, out-of-range instants still raise."""
    from datetime import datetime, timedelta, timezone

    import pytest

    from otel_commerce import EventValidationError
    from otel_commerce._model._time import to_unix_ns

    class Sub(datetime):
        pass

    base = datetime(2026, 11, 30, 19, 21, 3, 123456, tzinfo=timezone.utc)
    want = 1796066463123456000
    assert to_unix_ns(base) == want
    assert to_unix_ns(base.replace(tzinfo=None)) == want
    assert to_unix_ns(base.astimezone(timezone(timedelta(hours=-5)))) == want
    assert to_unix_ns(Sub(2026, 11, 30, 19, 21, 3, 123456, tzinfo=timezone.utc)) == want
    assert to_unix_ns(datetime(1970, 1, 1, tzinfo=timezone.utc)) == 0
    with pytest.raises(EventValidationError):
        to_unix_ns(datetime(1969, 12, 31, 23, 59, 59, tzinfo=timezone.utc))


def test_info_log_record_with_the_callers_context_is_the_one_it_reads_itself() -> None:
    """``emit_pending`` hands ``info_log_record`` the context and span context it read (as ``build_pending``
    reads them): the record equals the one ``info_log_record`` makes reading them itself."""
    from opentelemetry import context, trace
    from opentelemetry.sdk.trace import TracerProvider

    from otel_commerce._otel import _sdk
    from otel_commerce._record._recorder import CommerceLogRecord

    tp = TracerProvider(shutdown_on_exit=False)
    with tp.get_tracer("t").start_as_current_span("s"):
        ctx = context.get_current()
        given = _sdk.info_log_record(CommerceLogRecord, 7, "commerce.x", {}, ctx, trace.get_current_span(ctx).get_span_context())
        read = _sdk.info_log_record(CommerceLogRecord, 7, "commerce.x", {})
    assert {k: v for k, v in vars(given).items() if k != "observed_timestamp"} == {
        k: v for k, v in vars(read).items() if k != "observed_timestamp"
    }
    assert given.trace_id != 0


def test_flat_attributes_reads_each_catalog_types_money_field() -> None:
    """``commerce.revenue`` is the type's money field (a per-type map now) for every catalog type that has one,
    ``revenue`` for the others and for custom types; a bool is not money; a float-like int becomes a float."""
    from datetime import datetime, timezone

    from otel_commerce._model import CATALOG
    from otel_commerce._model._envelope import CommerceEvent
    from otel_commerce._record._recorder import flat_attributes

    def event(event_type: str, data: dict[str, Any]) -> CommerceEvent:
        return CommerceEvent(id="i", type=event_type, timestamp=datetime.now(timezone.utc), organization_id="o", data=data)

    for name, spec in CATALOG.items():
        field = spec.money or "revenue"
        attrs = flat_attributes(event(name, {field: 3, "currency": "EUR"}))
        assert attrs["commerce.revenue"] == 3.0 and type(attrs["commerce.revenue"]) is float, name
        assert attrs["commerce.currency"] == "EUR"
        if spec.money and spec.money != "revenue":
            assert "commerce.revenue" not in flat_attributes(event(name, {"revenue": 3}))
    assert flat_attributes(event("loyalty.points", {"revenue": 2.5}))["commerce.revenue"] == 2.5
    assert "commerce.revenue" not in flat_attributes(event("order.completed", {"revenue": True}))
    assert "commerce.currency" not in flat_attributes(event("order.completed", {"currency": ""}))
