"""Failures are visible: WARNING at once with the real cause, rate-limited summaries, recovery at INFO.

Real nats-server (with auth), real HTTP collector, real engine; log output through ``caplog`` or a
subprocess's stderr.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from fake_collector import FakeCollector
from polling import poll

from otel_commerce import _log
from otel_commerce._cli._natsserver import NatsServer, free_port
from otel_commerce._delivery import DeliveryEngine
from otel_commerce._model import Pending, uuid7
from otel_commerce._sinks import CollectorSink, JetStreamSink

FAST = {"backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05, "linger_seconds": 0.0}


@pytest.fixture(autouse=True)
def fresh_failure_log(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    _log.FAILURES.reset()
    caplog.set_level(logging.DEBUG, logger="otel_commerce")
    yield
    _log.FAILURES.reset()


@pytest.fixture
def collector() -> Iterator[FakeCollector]:
    with FakeCollector() as fc:
        yield fc


def _event(i: int, **props: Any) -> Pending:
    return Pending(
        collector={"event": "thing_happened", "distinct_id": f"u{i}", "properties": {"event_id": uuid7(), **props}},
        via="client",
    )


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "otel_commerce" and r.levelno == logging.WARNING]


def _infos(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "otel_commerce" and r.levelno == logging.INFO]


# --------------------------------------------------------------------------- the reporter itself
def test_failure_log_first_at_once_then_summaries_then_recovery(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    flog = _log.FailureLog(interval_seconds=30.0, clock=lambda: now[0])
    flog.failure("jetstream", "unreachable", "cannot connect to nats://u:pw@h:4222: refused", outage=True)
    assert _warnings(caplog) == ["otel-commerce: jetstream unreachable: cannot connect to nats://***@h:4222: refused"]
    for _ in range(1203):
        now[0] += 0.01
        flog.failure("jetstream", "unreachable", "refused", waiting=1204, outage=True)
    assert len(_warnings(caplog)) == 1  # rate-limited: nothing new within 30 s
    now[0] = 130.0
    flog.failure("jetstream", "unreachable", "refused", waiting=1204, outage=True)
    summary = _warnings(caplog)[-1]
    assert "jetstream unreachable for 30 s" in summary and "1,204 events waiting" in summary, summary
    flog.failure("collector", "rejected (http_400)", "bad event")  # another (sink, reason): at once
    assert _warnings(caplog)[-1] == "otel-commerce: collector rejected (http_400): bad event"
    now[0] = 145.0
    flog.recovered("jetstream")
    assert _infos(caplog)[-1] == "otel-commerce: jetstream recovered (unreachable for 45 s)"
    flog.recovered("collector")  # a rejection is not an outage: no recovery line
    assert len(_infos(caplog)) == 1
    flog.failure("jetstream", "unreachable", "refused again", outage=True)  # a new outage warns at once
    assert _warnings(caplog)[-1].endswith("refused again")


# --------------------------------------------------------------------------- NATS: the real cause
def test_nats_authorization_violation_is_a_warning_with_the_real_cause(caplog: pytest.LogCaptureFixture) -> None:
    with NatsServer(extra_args=["--user", "app", "--pass", "right-pass-77"]) as server:
        url = server.url.replace("nats://", "nats://app:wrong-pass-42@")
        engine = DeliveryEngine([JetStreamSink(url, connect_options={"max_reconnect_attempts": 1})], **FAST)
        engine.submit(Pending(event=None, collector={"event": "x"}, via="client"))  # starts the loop
        try:
            assert poll(lambda: any("unreachable" in m for m in _warnings(caplog)), 15)
        finally:
            engine.shutdown(2)
    line = next(m for m in _warnings(caplog) if "unreachable" in m)
    assert "Authorization Violation" in line, line
    assert "NoServersError" not in line
    assert "wrong-pass-42" not in caplog.text and "nats://***@127.0.0.1" in line


def test_nats_connection_refused_shows_the_socket_error(caplog: pytest.LogCaptureFixture) -> None:
    engine = DeliveryEngine(
        [JetStreamSink(f"nats://127.0.0.1:{free_port()}", connect_options={"max_reconnect_attempts": 1})], **FAST
    )
    engine.submit(Pending(event=None, collector={"event": "x"}, via="client"))
    try:
        assert poll(lambda: any("unreachable" in m for m in _warnings(caplog)), 15)
    finally:
        engine.shutdown(2)
    line = next(m for m in _warnings(caplog) if "unreachable" in m)
    assert "ConnectionRefusedError" in line or "Connect call failed" in line, line


# --------------------------------------------------------------------------- collector
def test_permanent_rejection_logs_the_servers_message(
    collector: FakeCollector, caplog: pytest.LogCaptureFixture
) -> None:
    engine = DeliveryEngine([CollectorSink(collector.url)], **FAST)
    engine.submit(_event(1, bad=True))
    assert engine.flush(10) is False
    engine.shutdown(2)
    lines = [m for m in _warnings(caplog) if "rejected (http_400)" in m]
    assert lines and "bad event" in lines[0], _warnings(caplog)


def test_wrong_collector_path_is_a_warning(collector: FakeCollector, caplog: pytest.LogCaptureFixture) -> None:
    engine = DeliveryEngine([CollectorSink(collector.url + "/wrong/prefix")], **FAST)
    engine.submit(_event(1))
    assert engine.flush(10) is False
    engine.shutdown(2)
    warnings = _warnings(caplog)
    assert any("collector wrong path" in m and "HTTP 404" in m for m in warnings), warnings
    assert any("rejected (http_404)" in m and "is the collector endpoint right?" in m for m in warnings), warnings


def test_outage_then_recovery_at_info_and_no_httpx_request_lines(
    collector: FakeCollector, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # root: httpx's per-request INFO lines would be captured if emitted
    collector.fail_next(3, status=503)
    engine = DeliveryEngine([CollectorSink(collector.url)], **FAST)
    engine.submit(_event(1))
    assert engine.flush(10)
    engine.shutdown(2)
    assert any("collector unreachable" in m and "HTTP 503" in m for m in _warnings(caplog)), caplog.text
    assert any("collector recovered" in m for m in _infos(caplog)), caplog.text
    assert not [r for r in caplog.records if r.name.startswith(("httpx", "httpcore"))], caplog.text


def test_a_throttle_is_reported_as_throttled_not_unreachable(
    collector: FakeCollector, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 16 waits throttles out; issue 15's reporter names them for what they are."""
    collector.fail_next(2, status=429, retry_after="0")
    engine = DeliveryEngine([CollectorSink(collector.url)], **FAST)
    engine.submit(_event(1))
    assert engine.flush(10)
    engine.shutdown(2)
    warnings = _warnings(caplog)
    assert any("collector throttled" in m and "HTTP 429" in m for m in warnings), warnings
    assert not any("unreachable" in m for m in warnings), warnings
    assert any("collector recovered (throttled" in m for m in _infos(caplog)), caplog.text


def test_drops_at_shutdown_are_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    engine = DeliveryEngine([CollectorSink(f"http://127.0.0.1:{free_port()}")], **FAST)
    for i in range(5):
        engine.submit(_event(i))
    engine.shutdown(0.2)
    assert any("dropped (shutdown)" in m for m in _warnings(caplog)), _warnings(caplog)


# --------------------------------------------------------------------------- start-up line, debug
_SCRIPT = """
import logging, sys
import otel_commerce
from otel_commerce import _runtime
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
otel_commerce.configure(collector_endpoint=sys.argv[1], nats_url="nats://u:s3cr3t-pw@127.0.0.1:1")
otel_commerce.shutdown(0.5)
"""


def test_one_info_line_at_startup_and_debug_env(collector: FakeCollector) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, collector.url], env=env, capture_output=True, text=True, timeout=60
    )
    lines = [line for line in proc.stderr.splitlines() if "delivering commerce events to" in line]
    assert len(lines) == 1 and lines[0].startswith("INFO otel_commerce"), proc.stderr
    assert "jetstream nats://***@127.0.0.1:1" in lines[0] and f"collector {collector.url}" in lines[0]
    assert "mode=log" in lines[0]
    assert "s3cr3t-pw" not in proc.stderr
    assert "DEBUG" not in proc.stderr
    debug = subprocess.run(
        [sys.executable, "-c", _SCRIPT, collector.url],
        env={**env, "OTEL_COMMERCE_DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "DEBUG otel_commerce otel-commerce: Settings(" in debug.stderr, debug.stderr
    assert debug.stderr.count("delivering commerce events to") == 1
    assert "s3cr3t-pw" not in debug.stderr


_TRACER_SCRIPT = """
import logging, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s")
import otel_commerce
if sys.argv[1] == "sdk":
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    trace.set_tracer_provider(TracerProvider())
otel_commerce.configure()
otel_commerce.configure()
"""


def test_configure_without_tracer_provider_warns_once() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    runs = {
        kind: subprocess.run(
            [sys.executable, "-c", _TRACER_SCRIPT, kind], env=env, capture_output=True, text=True, timeout=60
        ).stderr
        for kind in ("none", "sdk")
    }
    assert runs["none"].count("carry no trace ids") == 1, runs["none"]
    assert "trace.set_tracer_provider(TracerProvider())" in runs["none"]
    assert "trace ids" not in runs["sdk"], runs["sdk"]


_ENV_ONLY_SCRIPT = """
import sys
import otel_commerce
if sys.argv[1] == "sdk":
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    trace.set_tracer_provider(TracerProvider())
for i in range(3):  # no configure(): the environment-only path
    otel_commerce.record_event("loyalty.points_earned", organization_id="acme", id=f"p{i}", data={"n": i})
"""


def test_env_only_first_event_without_tracer_provider_warns_once() -> None:
    """No configure(), no SDK TracerProvider: the first event outside a span logs one WARNING (stderr, via the
    library's own last-resort handler) naming the fix; with a provider installed, nothing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_COMMERCE_COLLECTOR_ENDPOINT="http://127.0.0.1:9", OTEL_COMMERCE_EXIT_TIMEOUT_MS="100")  # a sink
    runs = {
        kind: subprocess.run(
            [sys.executable, "-c", _ENV_ONLY_SCRIPT, kind], env=env, capture_output=True, text=True, timeout=60
        ).stderr
        for kind in ("none", "sdk")
    }
    assert runs["none"].count("carry no trace ids") == 1, runs["none"]
    assert "opentelemetry-instrument" in runs["none"] and "set_tracer_provider" in runs["none"], runs["none"]
    assert "trace ids" not in runs["sdk"], runs["sdk"]
