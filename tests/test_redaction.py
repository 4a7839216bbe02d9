"""Secrets never show: a run with secrets set, every log line, exception text and CLI output grepped.

Real nats-server with auth, a real HTTP collector, the real ``otel-commerce`` CLI (subprocesses).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fake_collector import FakeCollector
from polling import poll

import otel_commerce
from otel_commerce import _log
from otel_commerce._cli._natsserver import NatsServer, free_port
from otel_commerce._config import Settings, parse_headers
from otel_commerce._errors import ConfigurationError
from otel_commerce._redact import redact, redact_headers, redact_url

NATS_PASSWORD = "nats-Pa55-w0rd-9911"
NATS_TOKEN = "nats-T0ken-5522"
COLLECTOR_TOKEN = "coll-Bearer-T0k-7733"
SECRETS = (NATS_PASSWORD, NATS_TOKEN, COLLECTOR_TOKEN)


def _clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"secret {secret!r} leaked in:\n{text}"


@pytest.fixture
def nats_auth() -> Iterator[NatsServer]:
    with NatsServer(extra_args=["--user", "shop", "--pass", "the-right-one"]) as server:
        yield server


def test_helpers() -> None:
    assert redact_url(f"nats://shop:{NATS_PASSWORD}@h:4222,nats://{NATS_TOKEN}@h2:4222") == (
        "nats://***@h:4222,nats://***@h2:4222"
    )
    assert redact_url(f"https://c.example/v1?token={COLLECTOR_TOKEN}&org=a") == "https://c.example/v1?token=***&org=a"
    assert redact_headers({"Authorization": f"Bearer {COLLECTOR_TOKEN}", "X-API-Key": "k", "X-Org": "o"}) == {
        "Authorization": "***",
        "X-API-Key": "***",
        "X-Org": "***",  # every collector header value: a harmless-looking name may carry a key
    }
    text = redact(f"Authorization: Bearer {COLLECTOR_TOKEN} api_key={NATS_TOKEN} /etc/app/nats.creds")
    _clean(text)
    assert "/etc/app/nats.creds" in text  # paths are not secrets


HONEYCOMB_KEY = "hcKey-HdrSecret-4471"


def test_a_header_whose_name_does_not_look_secret_is_masked_everywhere(tmp_path: Path) -> None:
    """``x-honeycomb-team`` carries an API key: its value shows neither in ``repr(Settings)`` nor in the
    ``OTEL_COMMERCE_DEBUG`` settings line, whether set by ``configure()`` or ``OTEL_COMMERCE_COLLECTOR_HEADERS``."""
    settings = Settings(collector_endpoint="http://127.0.0.1:9", collector_headers={"x-honeycomb-team": HONEYCOMB_KEY})
    assert HONEYCOMB_KEY not in repr(settings) and "'x-honeycomb-team': '***'" in repr(settings)
    assert HONEYCOMB_KEY not in redact(f"the collector answered 401 for {HONEYCOMB_KEY}")  # registered
    script = tmp_path / "headers_app.py"
    script.write_text(
        "import logging, sys\n"
        "logging.basicConfig(level=logging.DEBUG)\n"
        "import otel_commerce\n"
        "kw = {'collector_headers': {'x-honeycomb-team': sys.argv[1]}} if sys.argv[2] == 'configure' else {}\n"
        "print(repr(otel_commerce.configure(collector_endpoint='http://127.0.0.1:9', spool='off', **kw)))\n"
    )
    for how in ("configure", "env"):
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env["OTEL_COMMERCE_DEBUG"] = "1"
        if how == "env":
            env["OTEL_COMMERCE_COLLECTOR_HEADERS"] = f"x-honeycomb-team={HONEYCOMB_KEY}"
        p = subprocess.run(
            [sys.executable, str(script), HONEYCOMB_KEY, how], env=env, capture_output=True, text=True, timeout=60
        )
        assert p.returncode == 0, p.stderr
        assert "x-honeycomb-team" in p.stdout and "collector_headers" in p.stderr  # the debug line is there
        assert HONEYCOMB_KEY not in p.stdout + p.stderr, how


def test_settings_repr_and_configuration_errors_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(
        nats_url=f"nats://shop:{NATS_PASSWORD}@127.0.0.1:4222",
        nats_token=NATS_TOKEN,
        nats_user="shop",  # a password needs a user (issue 16's credential check)
        nats_password=NATS_PASSWORD,
        collector_endpoint="http://127.0.0.1:9",
        collector_headers={"Authorization": f"Bearer {COLLECTOR_TOKEN}"},
    )
    _clean(repr(settings))
    _clean(str(settings))
    _clean(redact(f"a library echoed {NATS_TOKEN} and {NATS_PASSWORD} in plain text"))  # configured: known
    assert "nats://***@127.0.0.1:4222" in repr(settings) and "'Authorization': '***'" in repr(settings)
    bad_headers = f"Authorization: Bearer {COLLECTOR_TOKEN}"  # ':' instead of '='
    with pytest.raises(ConfigurationError) as info:
        parse_headers(bad_headers)
    assert "is not key=value" in str(info.value)
    _clean(str(info.value))
    # from the environment it disables the collector sink with an ERROR (issue 16), just as clean
    env = {"OTEL_COMMERCE_COLLECTOR_ENDPOINT": "http://127.0.0.1:9", "OTEL_COMMERCE_COLLECTOR_HEADERS": bad_headers}
    with caplog.at_level(logging.ERROR, logger="otel_commerce"):
        assert Settings.from_env(env).collector_endpoint == ""
    assert "is not key=value" in caplog.text
    _clean(caplog.text)
    with pytest.raises(ConfigurationError) as info:
        Settings(nats_url=f"http://shop:{NATS_PASSWORD}@127.0.0.1:4222")
    _clean(str(info.value))


def test_a_run_with_secrets_set_leaks_nothing(
    nats_auth: NatsServer, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """Wrong NATS password + a collector that rejects: every log line and error text is clean."""
    caplog.set_level(logging.DEBUG)
    _log.FAILURES.reset()
    errors: list[BaseException] = []
    with FakeCollector() as collector:
        collector.always_status = 401
        settings = otel_commerce.configure(
            nats_url=nats_auth.url.replace("nats://", f"nats://shop:{NATS_PASSWORD}@"),
            collector_endpoint=collector.url,
            collector_headers={"Authorization": f"Bearer {COLLECTOR_TOKEN}"},
            on_error=lambda exc, pending: errors.append(exc),
            max_age_seconds=2.0,
        )
        try:
            otel_commerce.record_event("loyalty.points_earned", organization_id="org", id="cart-1", user_id="u")
            assert poll(lambda: "Authorization Violation" in caplog.text and bool(errors), 15), caplog.text
            assert collector.headers_seen and collector.headers_seen[0].get("Authorization") == f"Bearer {COLLECTOR_TOKEN}"
        finally:
            otel_commerce.shutdown(1)
    _clean(repr(settings))
    _clean(caplog.text)
    for record in caplog.records:
        _clean(record.getMessage())
    for exc in errors:
        _clean(str(exc))
        _clean(repr(exc))


def test_cli_tail_and_trace_errors_are_redacted(nats_auth: NatsServer) -> None:
    url = nats_auth.url.replace("nats://", f"nats://shop:{NATS_PASSWORD}@")
    for args in (["tail", "--nats-url", url, "--for", "1s"], ["trace", "0" * 31 + "1", "--nats-url", url]):
        proc = subprocess.run(
            [sys.executable, "-m", "otel_commerce.cli", *args], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 2, proc.stderr
        assert "Authorization Violation" in proc.stderr and "nats://***@127.0.0.1" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
        _clean(proc.stdout + proc.stderr)


def test_collector_token_file_start_line_forwarder_log_and_exposure_warning(
    nats_auth: NatsServer, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(COLLECTOR_TOKEN + "\n")
    port = free_port()
    env = {**os.environ, "OTEL_COMMERCE_COLLECTOR_TOKEN_FILE": str(token_file)}
    env.pop("OTEL_COMMERCE_COLLECTOR_TOKEN", None)
    nats_url = nats_auth.url.replace("nats://", f"nats://shop:{NATS_PASSWORD}@")  # wrong password: forwarder warns
    log = tmp_path / "collector.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "otel_commerce.cli", "collector", "--port", str(port), "--db", str(tmp_path / "c.db"),
         "--nats-url", nats_url],
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=(tmp_path / "access.log").open("w"),  # uvicorn's access log goes to stdout
        stderr=log.open("w"),
        text=True,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            assert proc.poll() is None
            try:
                return httpx.get(base + "/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        assert poll(healthy, 20)
        assert httpx.post(base + "/event", json={"event": "x"}).status_code == 401  # the file's token is in force
        ok = httpx.post(
            base + "/event", json={"event": "x", "event_id": "e-1"}, headers={"Authorization": f"Bearer {COLLECTOR_TOKEN}"}
        )
        assert ok.status_code == 200
        # a token in a query string (some proxies / clients put it there) never reaches uvicorn's access log
        assert httpx.get(base + "/health?token=qs-secret-77&x=1").status_code == 200
        assert poll(lambda: "/health?token=" in (tmp_path / "access.log").read_text(), 15)
        assert poll(lambda: "Authorization Violation" in log.read_text(), 15)  # the forwarder's log line
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    out, err = "", log.read_text()
    assert f"127.0.0.1:{port}" in err and "(bearer auth on)" in err and "nats://***@127.0.0.1" in err, err
    assert "Authorization Violation" in err, err  # the forwarder's log line, redacted
    access = (tmp_path / "access.log").read_text()
    assert "qs-secret-77" not in access + err and "/health?token=***&x=1" in access, access
    _clean(out + err)
    # bound beyond loopback without a token: a loud warning
    proc = subprocess.Popen(
        [sys.executable, "-m", "otel_commerce.cli", "collector", "--host", "0.0.0.0", "--port", str(free_port()),
         "--db", str(tmp_path / "d.db"), "--log-level", "warning"],
        env={k: v for k, v in env.items() if not k.startswith("OTEL_COMMERCE_COLLECTOR_TOKEN")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        lines = [proc.stderr.readline() for _ in range(2)]
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert lines[1].startswith("WARNING:") and "WITHOUT authentication" in "".join(lines), lines


def test_collector_port_in_use_and_missing_token_file_exit_2(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "otel_commerce.cli", "collector", "--port", str(port), "--db", str(tmp_path / "x")],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2 and "already in use" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert "startup complete" not in proc.stderr.lower()
    proc = subprocess.run(
        [sys.executable, "-m", "otel_commerce.cli", "collector", "--auth-token-file", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "cannot read the token file" in proc.stderr, proc.stderr
