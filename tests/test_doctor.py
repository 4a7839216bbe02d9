"""`otel-commerce doctor` and `--version` against a real nats-server and a real collector."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import nats
import orjson
import pytest
from collector_server import running_collector
from nats.js import errors as js_errors
from nats.js.api import StreamConfig
from typer.testing import CliRunner

from otel_commerce import __version__
from otel_commerce._cli._natsserver import NatsServer, free_port
from otel_commerce.cli import app

runner = CliRunner()
TOKEN = "doc-T0ken-4411"


@pytest.fixture(scope="module")
def server() -> Iterator[NatsServer]:
    with NatsServer() as s:
        yield s


def _stream(url: str, *, subjects: list[str] | None, window: float = 600.0) -> None:
    """Delete COMMERCE, then (re)create it with ``subjects`` (None: leave it missing)."""

    async def run() -> None:
        nc = await nats.connect(url)
        js = nc.jetstream()
        with contextlib.suppress(js_errors.NotFoundError):
            await js.delete_stream("COMMERCE")
        if subjects is not None:
            await js.add_stream(StreamConfig(name="COMMERCE", subjects=subjects, duplicate_window=window))
        await nc.close()

    asyncio.run(run())


def _env(**extra: str) -> dict[str, str]:
    env = {k: "" for k in os.environ if k.startswith(("OTEL_", "PUBSUB_URL", "ANALYTICS_ENDPOINT"))}
    return {**env, **extra}


def _doctor(*args: str, **env: str) -> tuple[int, dict[str, object], str]:
    result = runner.invoke(app, ["doctor", "--json", *args], env=_env(**env))
    assert "Traceback" not in result.output
    return result.exit_code, orjson.loads(result.stdout), result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"otel-commerce {__version__}"


def test_all_good_shows_redacted_settings_with_their_sources(server: NatsServer, tmp_path: Path) -> None:
    _stream(server.url, subjects=["commerce.>"])
    with running_collector(tmp_path / "c.db", auth_token=TOKEN) as (collector, store):
        code, report, output = _doctor(
            "--nats-url",
            server.url,
            OTEL_COMMERCE_COLLECTOR_ENDPOINT=collector.url,
            OTEL_COMMERCE_COLLECTOR_HEADERS=f"Authorization=Bearer%20{TOKEN}",
            OTEL_COMMERCE_SPOOL_DIR=str(tmp_path / "spool"),
        )
        assert store.count() == 0  # the auth probe stored nothing
    assert code == 0, output
    settings = report["settings"]
    assert isinstance(settings, dict)
    assert settings["nats_url"] == {"value": server.url, "source": "argument"}
    assert settings["collector_endpoint"]["source"] == "env OTEL_COMMERCE_COLLECTOR_ENDPOINT"
    assert settings["collector_headers"] == {
        "value": "Authorization=***",
        "source": "env OTEL_COMMERCE_COLLECTOR_HEADERS",
    }
    assert settings["mode"] == {"value": "log", "source": "default"}
    names = {c["name"]: c["ok"] for c in report["checks"]}  # type: ignore[union-attr]
    assert names == {
        "nats connect": True,
        "stream": True,
        "duplicate window": True,
        "collector health": True,
        "collector auth": True,
        "spool": True,
        "spool backlog": True,
        "otel pipeline": True,
        "attribute limits": True,
    }
    assert TOKEN not in output


def test_each_problem_gets_one_line_of_fix(server: NatsServer, tmp_path: Path) -> None:
    _stream(server.url, subjects=["commerce.order.*"], window=60)  # narrow subjects, 1-minute window
    with running_collector(tmp_path / "c.db", auth_token=TOKEN) as (collector, _):
        code, report, output = _doctor(
            "--nats-url",
            server.url,
            "--collector-endpoint",
            collector.url,
            OTEL_COMMERCE_COLLECTOR_HEADERS="Authorization=Bearer%20wrong-token-1",
            OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT="256",
        )
    assert code == 1
    failed = {c["name"]: c for c in report["checks"] if not c["ok"]}  # type: ignore[union-attr]
    assert set(failed) == {"stream", "duplicate window", "collector auth", "attribute limits"}, output
    assert "bootstrap --reconcile" in failed["stream"]["fix"]
    assert "60 s < retry age 300 s" in failed["duplicate window"]["detail"]
    assert (
        "HTTP 401" in failed["collector auth"]["detail"]
        and "OTEL_COMMERCE_COLLECTOR_HEADERS" in failed["collector auth"]["fix"]
    )
    assert "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT" in failed["attribute limits"]["fix"]
    assert "wrong-token-1" not in output
    _stream(server.url, subjects=None)
    code, report, _ = _doctor("--nats-url", server.url)
    failed = {c["name"]: c for c in report["checks"] if not c["ok"]}  # type: ignore[union-attr]
    assert code == 1 and "otel-commerce bootstrap" in failed["stream"]["fix"]


def test_nats_errors_show_the_real_cause_and_the_human_output() -> None:
    with NatsServer(extra_args=["--user", "shop", "--pass", "right-1"]) as auth:
        url = auth.url.replace("nats://", "nats://shop:wrong-pw-8@")
        result = runner.invoke(app, ["doctor", "--nats-url", url], env=_env())
    assert result.exit_code == 1
    assert "FAIL nats connect" in result.stdout and "Authorization Violation" in result.stdout, result.stdout
    assert "fix: check OTEL_COMMERCE_NATS_USER" in result.stdout
    assert "wrong-pw-8" not in result.output and "nats://***@127.0.0.1" in result.stdout
    result = runner.invoke(app, ["doctor", "--nats-url", f"nats://127.0.0.1:{free_port()}"], env=_env())
    assert result.exit_code == 1
    assert "Connect call failed" in result.stdout or "Connection refused" in result.stdout, result.stdout


def test_no_sink_and_bad_setting_are_problems() -> None:
    code, report, _ = _doctor()
    assert code == 1 and any(c["name"] == "sinks" and not c["ok"] for c in report["checks"])  # type: ignore[union-attr]
    code, report, _ = _doctor(OTEL_COMMERCE_COLLECTOR_HEADERS="Authorization: Bearer leaked-secret-9")
    assert code == 1 and "leaked-secret-9" not in str(report)


def _tmpfs_dir() -> Path | None:
    """A writable directory on a tmpfs mount (from /proc/mounts), None when there is none."""
    with contextlib.suppress(OSError), open("/proc/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == "tmpfs" and os.access(parts[1], os.W_OK | os.X_OK):
                return Path(parts[1])
    return None


def test_spool_check_shows_mode_filesystem_and_backlog(server: NatsServer, tmp_path: Path, uid: str) -> None:
    """The spool check: the mode in force, its directory's filesystem (tmpfs: a warning with a fix line, exit
    code still 0), and the spooled events waiting (those of dead processes: a warning pointing at `spool replay`)."""
    from test_cli_spool import _dead_spool

    from otel_commerce._delivery._spool import filesystem_warning

    _stream(server.url, subjects=["commerce.>"])
    spool_dir = tmp_path / "spool"
    _dead_spool(spool_dir, server.url, 5, f"doc_{uid}")
    _dead_spool(spool_dir, "nats://127.0.0.1:1", 3, f"doc_other_{uid}")  # another sink key: not ours to replay
    code, report, output = _doctor(
        "--nats-url", server.url, OTEL_COMMERCE_SPOOL="wal", OTEL_COMMERCE_SPOOL_DIR=str(spool_dir)
    )
    checks = {c["name"]: c for c in report["checks"]}  # type: ignore[union-attr]
    assert code == 0, output
    assert checks["spool"]["ok"] and checks["spool"]["detail"].startswith(f"mode wal, directory {spool_dir}")
    assert checks["spool"]["warning"] is (filesystem_warning(spool_dir) is not None)
    assert "spool fsync" not in checks
    backlog = checks["spool backlog"]
    print(f"\n[doctor] spool backlog: {backlog['detail']} | fix: {backlog['fix']}")
    assert backlog["ok"] and backlog["warning"], backlog
    assert backlog["detail"].startswith("5 spooled event(s) for this service and these sinks (key "), backlog
    assert backlog["detail"].endswith(
        "unknown_service), 5 of them left by processes that are gone; 3 event(s) of 1 other sink key(s) (another "
        "service or other sink settings), 3 of them left by processes that are gone"
    ), backlog
    assert "now with `otel-commerce spool replay`" in backlog["fix"]
    assert "with that service's settings" in backlog["fix"] and "`otel-commerce spool drop --before" in backlog["fix"]

    code, report, _ = _doctor(
        "--nats-url", server.url, OTEL_COMMERCE_SPOOL="spill", OTEL_COMMERCE_SPOOL_FSYNC="always",
        OTEL_COMMERCE_SPOOL_DIR=str(spool_dir),
    )  # fmt: skip
    fsync = {c["name"]: c for c in report["checks"]}["spool fsync"]  # type: ignore[union-attr,index]
    assert code == 0 and fsync["ok"] and fsync["warning"], fsync
    assert fsync["detail"] == (
        "OTEL_COMMERCE_SPOOL_FSYNC=always is ignored: it applies to spool mode wal only (the spool is spill)"
    )

    code, report, _ = _doctor(
        "--nats-url", server.url, OTEL_COMMERCE_SPOOL="off", OTEL_COMMERCE_SPOOL_DIR=str(spool_dir)
    )
    spool_checks = [c for c in report["checks"] if c["name"].startswith("spool")]  # type: ignore[union-attr]
    assert code == 0 and [c["detail"][:4] for c in spool_checks] == ["off "]

    tmpfs = _tmpfs_dir()
    if tmpfs is None:
        pytest.skip("no writable tmpfs mount here")
    volatile = tmpfs / f"otel-commerce-doctor-{uid}"  # not created: doctor only looks
    result = runner.invoke(app, ["doctor", "--nats-url", server.url], env=_env(OTEL_COMMERCE_SPOOL_DIR=str(volatile)))
    assert result.exit_code == 0, result.output  # a warning is not a problem
    assert f"WARN spool: mode spill (default); spool directory {volatile} is on tmpfs" in result.stdout, result.stdout
    assert f"fix: mount a persistent volume at {volatile} or set OTEL_COMMERCE_SPOOL_DIR" in result.stdout
    assert "ok   spool backlog: no spooled event waiting" in result.stdout
    assert not volatile.exists()


def test_invalid_headers_name_the_variable_and_the_format_not_set_an_endpoint() -> None:
    """`Authorization: Bearer x` (HTTP syntax, not key=value): doctor names OTEL_COMMERCE_COLLECTOR_HEADERS and the
    format, once, and does not ask to set OTEL_COMMERCE_COLLECTOR_ENDPOINT (it is set)."""
    code, report, output = _doctor(
        OTEL_COMMERCE_COLLECTOR_ENDPOINT="http://127.0.0.1:9", OTEL_COMMERCE_COLLECTOR_HEADERS="Authorization: Bearer x"
    )
    checks = report["checks"]
    assert code == 1, output
    settings = [c for c in checks if c["name"] == "settings"]  # type: ignore[union-attr,index]
    assert len(settings) == 1 and not settings[0]["ok"], checks
    detail = settings[0]["detail"]
    assert detail.startswith("OTEL_COMMERCE_COLLECTOR_HEADERS: entry 1 is not key=value") and "%20" in detail, detail
    assert detail.count("OTEL_COMMERCE_COLLECTOR_HEADERS") == 1 and "sink is disabled" in detail, detail
    assert "set OTEL_COMMERCE_NATS_URL" not in str(checks) and "set OTEL_COMMERCE_COLLECTOR_ENDPOINT" not in str(checks)


def test_spool_settings_show_their_effective_values() -> None:
    import platformdirs

    from otel_commerce import Settings

    _, report, _ = _doctor(OTEL_COMMERCE_COLLECTOR_ENDPOINT="http://127.0.0.1:9")
    rows = report["settings"]
    assert rows["spool"] == {"value": "spill (default)", "source": "default"}  # type: ignore[index]
    resolved = Path(platformdirs.user_state_dir("otel-commerce")) / "spool"  # OTEL_COMMERCE_SPOOL_DIR unset
    assert rows["spool_dir"]["value"] == f"{resolved} (default)"  # type: ignore[index]
    assert "spool='spill (default)'" in repr(Settings())


def test_pipeline_line_names_opentelemetry_instrument_only_when_installed(tmp_path: Path) -> None:
    """Without opentelemetry-instrumentation, doctor does not promise that opentelemetry-instrument adds our processor."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "if sys.argv[1] == 'without': sys.modules['opentelemetry.instrumentation'] = None\n"
        "sys.argv = ['otel-commerce', 'doctor', '--json']\n"
        "from otel_commerce.cli import main; main()"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PUBSUB_URL", "ANALYTICS_"))}
    details = {}
    for kind in ("without", "with"):
        proc = subprocess.run([sys.executable, "-c", code, kind], env=env, capture_output=True, text=True, timeout=60)
        checks = orjson.loads(proc.stdout.strip().splitlines()[-1])["checks"]
        details[kind] = next(c["detail"] for c in checks if c["name"] == "otel pipeline")
    assert "under opentelemetry-instrument the commerce instrumentor adds" in details["with"]
    assert "must call otel_commerce.configure()" in details["without"] and "[instrument]" in details["without"]


def test_an_event_bound_over_the_servers_max_payload_is_a_problem(server: NatsServer) -> None:
    """OTEL_COMMERCE_MAX_EVENT_BYTES may go up to 32 MiB, but the server (default max_payload 1 MiB) would reject
    events that large: doctor says so, with the fix; the default bound fits."""
    _stream(server.url, subjects=["commerce.>"])
    code, report, output = _doctor("--nats-url", server.url, OTEL_COMMERCE_MAX_EVENT_BYTES=str(8 * 1_048_576))
    failed = {c["name"]: c for c in report["checks"] if not c["ok"]}  # type: ignore[union-attr]
    print(f"\n[doctor] 8 MiB bound: {failed.get('event size')}")
    assert code == 1 and "max_payload 1048576" in failed["event size"]["detail"], output
    assert "max_payload" in failed["event size"]["fix"]
    _, report, _ = _doctor("--nats-url", server.url)
    assert "event size" not in {c["name"] for c in report["checks"]}  # type: ignore[union-attr]
