"""`otel-commerce trace` and `otel-commerce events` over a store filled through the collector's HTTP API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from collector_server import running_collector
from typer.testing import CliRunner

from otel_commerce.cli import app

TRACE = "0af7651916cd43dd8448eb211c80319c"
OTHER = "11111111111111111111111111111111"
runner = CliRunner()


def ev(event_id: str, name: str, ts: str, trace: str, org: str = "org-1") -> dict[str, object]:
    return {
        "event": name,
        "organization_id": org,
        "distinct_id": "u1",
        "timestamp": ts,
        "properties": {"event_id": event_id, "trace_id": trace, "span_id": "b7ad6b7169203331"},
    }


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("cli") / "events.db"
    with running_collector(path) as (server, _):
        batch = [
            ev("e3", "order_completed", "2025-03-01T10:00:03Z", TRACE),
            ev("e1", "checkout_started", "2025-03-01T10:00:01Z", TRACE),
            ev("e2", "order_created", "2025-03-01T10:00:02.5Z", TRACE),
            ev("e4", "order_completed", "2025-03-02T09:00:00Z", OTHER, org="org-2"),
            ev("e5", "referral_claimed", "2025-03-03T09:00:00Z", OTHER),
        ]
        assert httpx.post(server.url + "/events", json={"events": batch}).status_code == 200
    yield path


def json_lines(output: str) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in output.splitlines() if line.strip()]


def test_trace_json_lists_the_trace_in_time_order(db: Path) -> None:
    """`trace --json` prints one envelope per line, only that trace's events, oldest first."""
    result = runner.invoke(app, ["trace", TRACE, "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    lines = json_lines(result.stdout)
    assert [x["event_id"] for x in lines] == ["e1", "e2", "e3"]
    assert [x["type"] for x in lines] == ["checkout.started", "order.created", "order.completed"]
    assert all(x["trace_id"] == TRACE for x in lines)


def test_trace_table_shows_the_trace_ui_link(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The human output is a table of the events plus the OTEL_COMMERCE_TRACE_URL link for the trace."""
    monkeypatch.setenv("OTEL_COMMERCE_TRACE_URL", "http://localhost:16686/trace/{trace_id}")
    result = runner.invoke(app, ["trace", TRACE.upper(), "--db", str(db)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert f"http://localhost:16686/trace/{TRACE}" in result.stdout
    assert "order.created" in result.stdout and "3 event(s)" in result.stdout


def test_trace_without_events_exits_1(db: Path) -> None:
    """A trace with no commerce events says so and exits 1; a malformed id is a usage error."""
    result = runner.invoke(app, ["trace", "ab" * 16, "--db", str(db), "--json"])
    assert result.exit_code == 1 and result.stdout == ""
    assert runner.invoke(app, ["trace", "not-a-trace", "--db", str(db)]).exit_code == 2


def test_events_filters_by_type_org_and_time(db: Path) -> None:
    """`events` filters on type (any spelling), organization and a time range, and honours --limit."""

    def ids(*args: str) -> list[object]:
        result = runner.invoke(app, ["events", "--db", str(db), "--json", *args])
        assert result.exit_code == 0, result.output
        return [x["event_id"] for x in json_lines(result.stdout)]

    assert ids() == ["e1", "e2", "e3", "e4", "e5"]
    assert ids("--type", "order.completed") == ["e3", "e4"]
    assert ids("--type", "order_completed", "--type", "commerce.referral.claimed") == ["e3", "e4", "e5"]
    assert ids("--org", "org-2") == ["e4"]
    assert ids("--since", "2025-03-01T10:00:02Z", "--until", "2025-03-03T00:00:00Z") == ["e2", "e3", "e4"]
    assert ids("--trace-id", OTHER) == ["e4", "e5"]
    assert ids("--limit", "2") == ["e4", "e5"]


def test_events_table_and_missing_store(db: Path, tmp_path: Path) -> None:
    """Human output is a Rich table; a missing store is a clear error (exit 2), not an empty new file."""
    result = runner.invoke(app, ["events", "--db", str(db), "--type", "referral.claimed"], env={"COLUMNS": "250"})
    assert result.exit_code == 0 and "referral.claimed" in result.stdout and "1 event(s)" in result.stdout
    missing = tmp_path / "nope.db"
    result = runner.invoke(app, ["events", "--db", str(missing)])
    assert result.exit_code == 2 and "no collector store" in result.stderr
    assert not missing.exists()


def test_every_command_has_help() -> None:
    """`--help` works on the app and on every command."""
    for args in ([], ["collector"], ["trace"], ["tail"], ["events"], ["bootstrap"]):
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0 and "Usage" in result.stdout
