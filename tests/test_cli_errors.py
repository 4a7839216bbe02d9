"""The CLI reads well: compact lines when piped, one clear message and exit 2 for bad input, no traceback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from collector_server import running_collector
from typer.testing import CliRunner

from otel_commerce.cli import app

runner = CliRunner()
TRACE = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("clierr") / "events.db"
    with running_collector(path) as (server, _):
        event = {
            "event": "order_completed",
            "organization_id": "org-long-name-7",
            "distinct_id": "user-42",
            "timestamp": "2025-03-01T10:00:03Z",
            "properties": {"event_id": "evt-cli-1", "trace_id": TRACE, "order_id": "ord-99"},
        }
        assert httpx.post(server.url + "/events", json={"events": [event]}).status_code == 200
    yield path


def test_piped_output_keeps_every_important_field(db: Path) -> None:
    """Not a TTY (a pipe, 80 columns): one compact line per event with org, id, user, event id and source."""
    proc = subprocess.run(
        [sys.executable, "-m", "otel_commerce.cli", "events", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if "order.completed" in x)
    for field in ("org=org-long-name-7", "user=user-42", "event_id=evt-cli-1", "source=", f"trace={TRACE}"):
        assert field in line, line
    assert "id=" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["events", "--type", "order.complted"], "did you mean order.completed"),
        (["events", "--type", "not a type"], "invalid event type"),
        (["events", "--since", "1h", "--until", "2h"], "is not before --until"),
        (["tail", "--nats-url", "http://127.0.0.1:4222", "--for", "1s"], "must start with nats://"),
        (["trace", TRACE, "--nats-url", "https://127.0.0.1:4222"], "must start with nats://"),
    ],
)
def test_bad_input_is_one_message_and_exit_2(db: Path, args: list[str], message: str) -> None:
    if args[0] == "events":
        args = [*args, "--db", str(db)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.replace("│", " ").split()), result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_db_that_is_not_a_store_exits_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    text = tmp_path / "notes.txt"
    text.write_text("hello, not sqlite\n" * 100)
    for path in (empty, text):
        for args in (["events", "--db", str(path)], ["trace", TRACE, "--db", str(path)]):
            result = runner.invoke(app, args)
            assert result.exit_code == 2, result.output
            assert "is not an otel-commerce collector store" in result.stderr
            assert "Traceback" not in result.output


def test_bootstrap_prints_each_difference_once_in_cli_words() -> None:
    import asyncio

    import nats
    from nats.js.api import StreamConfig

    from otel_commerce._cli._natsserver import NatsServer

    with NatsServer() as server:

        async def narrow_stream() -> None:
            nc = await nats.connect(server.url)
            await nc.jetstream().add_stream(
                StreamConfig(name="COMMERCE", subjects=["commerce.order.*"], duplicate_window=60)
            )
            await nc.close()

        asyncio.run(narrow_stream())
        proc = subprocess.run(
            [sys.executable, "-m", "otel_commerce.cli", "bootstrap", "--nats-url", server.url],
            capture_output=True,
            text=True,
            timeout=60,
        )
    both = proc.stdout + proc.stderr
    assert proc.returncode == 1, both
    assert both.count("do not cover") == 1 and both.count("60s is shorter than 600s") == 1, both
    assert "duplicate_window" not in both and "reconcile=True" not in both
    assert "--reconcile" in proc.stdout


def test_trace_with_a_bad_trace_id_is_one_error_line_and_exit_2() -> None:
    """`otel-commerce trace zz`: one `error:` line, exit 2, no click usage block."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "otel_commerce.cli", "trace", "zz"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: 'zz' is not a trace id (32 hex digits)"], proc.stderr
