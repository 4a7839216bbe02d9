"""Configuration edges (issue 16): LINGER_MS=0, invalid values by class, configure() strictness, ms names."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_collector import FakeCollector

from otel_commerce import ConfigurationError, Settings, configure, record_event
from otel_commerce._runtime import RUNTIME, build_engine


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    import os

    for name in list(os.environ):
        if name.startswith("OTEL_COMMERCE_") or name in ("PUBSUB_URL", "ANALYTICS_ENDPOINT"):
            monkeypatch.delenv(name)
    RUNTIME.reset()
    yield monkeypatch
    RUNTIME.reset()


def test_linger_ms_zero_is_valid_and_events_are_delivered(clean_env: pytest.MonkeyPatch) -> None:
    """OTEL_COMMERCE_LINGER_MS=0 means no batching delay: the event arrives and flush() tells the truth."""
    with FakeCollector() as fc:
        clean_env.setenv("OTEL_COMMERCE_COLLECTOR_ENDPOINT", fc.url)
        clean_env.setenv("OTEL_COMMERCE_LINGER_MS", "0")
        assert RUNTIME.settings.linger_seconds == 0.0 and RUNTIME.settings.collector_endpoint == fc.url
        event_id = record_event("referral.claimed", organization_id="acme", data={"referee_id": "linger0"})
        assert RUNTIME.flush(10)
        assert fc.wait_for(1, 5) and fc.event_ids() == [event_id]


@pytest.mark.parametrize(
    ("name", "raw", "attr", "default"),
    [
        ("OTEL_COMMERCE_QUEUE_SIZE", "-1", "queue_size", 10_000),
        ("OTEL_COMMERCE_BATCH_SIZE", "many", "batch_size", 512),
        ("OTEL_COMMERCE_MAX_ATTEMPTS", "0", "max_attempts", 10),
        ("OTEL_COMMERCE_LINGER_MS", "-5", "linger_seconds", None),  # None: adaptive (the unset default)
        ("OTEL_COMMERCE_LINGER_MS", "soon", "linger_seconds", None),
        ("OTEL_COMMERCE_MAX_AGE_MS", "nan", "max_age_seconds", 300.0),
        ("OTEL_COMMERCE_MAX_AGE_MS", "0", "max_age_seconds", 300.0),
        ("OTEL_COMMERCE_MODE", "loud", "mode", "log"),
        ("OTEL_COMMERCE_PII", "maybe", "pii", "hash"),
        ("OTEL_COMMERCE_COLLECTOR_GZIP", "perhaps", "collector_gzip", False),
        ("OTEL_COMMERCE_MAX_EVENT_BYTES", "0", "max_event_bytes", 1_048_576 - 16_384),
        # over 32 MiB: a record that size would not fit NATS's largest max_payload / the spool's record bound
        ("OTEL_COMMERCE_MAX_EVENT_BYTES", str(64 * 1_048_576), "max_event_bytes", 1_048_576 - 16_384),
        ("OTEL_COMMERCE_LOG_BODY", "json", "log_body", "none"),
        ("OTEL_COMMERCE_DISABLED", "perhaps", "disabled", False),
        ("OTEL_SDK_DISABLED", "perhaps", "sdk_disabled", False),
    ],
)
def test_invalid_numeric_and_enum_settings_warn_and_use_the_default(
    caplog: pytest.LogCaptureFixture, name: str, raw: str, attr: str, default: Any
) -> None:
    """The OpenTelemetry rule: a WARNING naming the variable and the default used; the sinks stay on."""
    env = {name: raw, "OTEL_COMMERCE_COLLECTOR_ENDPOINT": "http://127.0.0.1:9"}
    with caplog.at_level(logging.WARNING, logger="otel_commerce"):
        s = Settings.from_env(env)
    assert getattr(s, attr) == default
    assert s.collector_endpoint == "http://127.0.0.1:9"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and name in warnings[0].getMessage() and "default" in warnings[0].getMessage()


def _files(tmp_path: Path) -> dict[str, str]:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    return {"garbage": str(garbage), "missing": str(tmp_path / "missing.pem")}


@pytest.mark.parametrize(
    ("bad", "variable"),
    [
        ({"OTEL_COMMERCE_NATS_URL": "http://nats:4222"}, "OTEL_COMMERCE_NATS_URL"),
        ({"PUBSUB_URL": "localhost:4222"}, "PUBSUB_URL"),
        ({"OTEL_COMMERCE_NATS_TLS_CA": "{missing}"}, "OTEL_COMMERCE_NATS_TLS_CA"),
        ({"OTEL_COMMERCE_NATS_TLS_CA": "{garbage}"}, "OTEL_COMMERCE_NATS_TLS_CA"),
        ({"OTEL_COMMERCE_NATS_TLS_CERT": "{garbage}", "OTEL_COMMERCE_NATS_TLS_KEY": "{garbage}"}, "_TLS_CERT"),
        ({"OTEL_COMMERCE_NATS_TLS_KEY": "{garbage}"}, "OTEL_COMMERCE_NATS_TLS_KEY"),
        ({"OTEL_COMMERCE_NATS_CREDS": "{missing}"}, "OTEL_COMMERCE_NATS_CREDS"),
        ({"OTEL_COMMERCE_NATS_PASSWORD": "s3cret-pw"}, "OTEL_COMMERCE_NATS_PASSWORD"),
    ],
)
def test_invalid_nats_security_settings_disable_only_the_jetstream_sink(
    caplog: pytest.LogCaptureFixture, tmp_path: Path, bad: dict[str, str], variable: str
) -> None:
    """Never a silent downgrade to plaintext or no auth: the JetStream sink is off (ERROR naming the
    variable, no secret in the log); the collector sink still works."""
    files = _files(tmp_path)
    env = {"OTEL_COMMERCE_NATS_URL": "nats://127.0.0.1:4222", "OTEL_COMMERCE_COLLECTOR_ENDPOINT": "http://c:1"}
    if "PUBSUB_URL" in bad:
        del env["OTEL_COMMERCE_NATS_URL"]
    env.update({k: v.format(**files) for k, v in bad.items()})
    with caplog.at_level(logging.WARNING, logger="otel_commerce"):
        s = Settings.from_env(env)
    assert s.nats_url == "" and s.collector_endpoint == "http://c:1"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and variable in errors[0] and "JetStream sink is disabled" in errors[0]
    assert "s3cret-pw" not in caplog.text
    engine = build_engine(s)
    assert engine is not None and [sink.name for sink in engine.sinks] == ["collector"]
    engine.shutdown(1)


@pytest.mark.parametrize(
    ("bad", "variable"),
    [
        ({"OTEL_COMMERCE_COLLECTOR_ENDPOINT": "collector:8091"}, "OTEL_COMMERCE_COLLECTOR_ENDPOINT"),
        ({"ANALYTICS_ENDPOINT": "ftp://collector"}, "ANALYTICS_ENDPOINT"),
        (
            {"OTEL_COMMERCE_COLLECTOR_HEADERS": "Authorization=Bearer%20tok-s3cret,broken"},
            "OTEL_COMMERCE_COLLECTOR_HEADERS",
        ),
    ],
)
def test_invalid_collector_settings_disable_only_the_collector_sink(
    caplog: pytest.LogCaptureFixture, bad: dict[str, str], variable: str
) -> None:
    """A bad endpoint or header list disables the collector sink (no request without its auth header)."""
    env = {"OTEL_COMMERCE_NATS_URL": "nats://127.0.0.1:4222"}
    if "ANALYTICS_ENDPOINT" not in bad and "OTEL_COMMERCE_COLLECTOR_ENDPOINT" not in bad:
        env["OTEL_COMMERCE_COLLECTOR_ENDPOINT"] = "http://c:1"
    env.update(bad)
    with caplog.at_level(logging.WARNING, logger="otel_commerce"):
        s = Settings.from_env(env)
    assert s.collector_endpoint == "" and s.nats_url == "nats://127.0.0.1:4222"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and variable in errors[0] and "collector sink is disabled" in errors[0]
    assert "s3cret" not in caplog.text


def test_max_age_in_milliseconds_and_the_deprecated_seconds_alias(caplog: pytest.LogCaptureFixture) -> None:
    """OTEL_COMMERCE_MAX_AGE_MS is milliseconds; the old _SECONDS name still works, with a WARNING."""
    with caplog.at_level(logging.WARNING, logger="otel_commerce"):
        assert Settings.from_env({"OTEL_COMMERCE_MAX_AGE_MS": "1500"}).max_age_seconds == 1.5
        assert not caplog.records
        assert Settings.from_env({"OTEL_COMMERCE_MAX_AGE_SECONDS": "20"}).max_age_seconds == 20.0
    assert "OTEL_COMMERCE_MAX_AGE_SECONDS is deprecated" in caplog.text and "OTEL_COMMERCE_MAX_AGE_MS" in caplog.text
    both = {"OTEL_COMMERCE_MAX_AGE_MS": "2000", "OTEL_COMMERCE_MAX_AGE_SECONDS": "20"}
    assert Settings.from_env(both).max_age_seconds == 2.0  # the new name wins


@pytest.mark.parametrize(
    "kwargs",
    [
        {"queue_size": 0},
        {"queue_size": "10"},
        {"batch_size": True},
        {"max_attempts": 1.5},
        {"linger_seconds": -1},
        {"linger_seconds": float("nan")},
        {"max_age_seconds": 0},
        {"mode": "loud"},
        {"pii": 3},
        {"nats_url": "http://x"},
        {"nats_url": 42},
        {"collector_endpoint": "ftp://x"},
        {"collector_headers": "a=b"},
        {"collector_headers": {"": "x"}},
        {"collector_gzip": "yes"},
        {"max_event_bytes": 0},
        {"max_event_bytes": 32 * 1_048_576 + 1},
        {"log_body": "json"},
        {"disabled": "yes"},
        {"sdk_disabled": 1},
        {"nats_url": "nats://127.0.0.1:4222", "nats_tls_ca": "/nonexistent/ca.pem"},
        {"nats_url": "nats://127.0.0.1:4222", "nats_password": "pw"},
        {"no_such_setting": 1},
        {"on_error": 42},
        {"logger_provider": object()},
    ],
)
def test_configure_raises_configuration_error_for_every_invalid_argument(
    clean_env: pytest.MonkeyPatch, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError):
        configure(**kwargs)
    assert RUNTIME.engine is None  # nothing was installed


def test_route_url_appends_to_the_path_and_keeps_the_query() -> None:
    from otel_commerce._config import route_url

    assert route_url("http://h:1?token=q", "/events") == "http://h:1/events?token=q"
    assert route_url("http://h:1/base/?token=q&x=1", "/health") == "http://h:1/base/health?token=q&x=1"
    assert route_url("https://h", "/event") == "https://h/event"


@pytest.mark.parametrize("bound", [0, True, 1.5, 32 * 1_048_576 + 1])
def test_client_refuses_an_event_bound_outside_1_to_32_mib(bound: Any) -> None:
    """The spool reads records back up to 64 MiB and NATS allows a max_payload of 64 MiB at most."""
    from otel_commerce import Client

    with pytest.raises(ConfigurationError, match="max_event_bytes"):
        Client("http://127.0.0.1:9", max_event_bytes=bound)
