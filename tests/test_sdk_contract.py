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
