"""`otel-commerce trace` and `otel-commerce events` over a store filled through the collector's HTTP API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def _command_paths(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _command_paths(sub, (*path, name))


def test_every_help_shows_defaults_and_flags_as_flags() -> None:
    """`--help` of the app and of every command: flags are bare (no `<bool>` / BOOLEAN placeholder), every option
    that takes a value names it (no `<str>`-style type) and shows its default (or that it is required)."""
    import typer.main

    paths = list(_command_paths(typer.main.get_command(app)))
    assert {p for p, _ in paths} >= {(), ("collector",), ("trace",), ("tail",), ("events",), ("bootstrap",),
                                     ("doctor",), ("demo",), ("spool", "stats"), ("spool", "replay"), ("spool", "drop")}
    for path, command in paths:
        result = runner.invoke(app, [*path, "--help"], terminal_width=400, max_content_width=400)
        assert result.exit_code == 0 and "Usage" in result.stdout, (path, result.output)
        text = result.stdout
        assert "<bool>" not in text and "BOOLEAN" not in text, (path, text)
        lines = text.split("\nOptions:\n")[1].splitlines()
        for param in command.params:
            if param.param_type_name != "option" or param.hidden:
                continue
            opts = ", ".join(sorted(param.opts, key=len))
            found = [ln for ln in lines if ln.strip().startswith(opts + " ") or ln.strip() == opts]
            assert len(found) == 1, (path, opts, text)
            line = found[0]
            head = line.strip()[len(opts) :].split("  ")[0].strip()
            if param.is_flag:
                assert head == "", (path, line)  # a bare flag
            else:
                assert head and head.isupper() and "<" not in head, (path, line)  # a named value: URL, PATH, N
                assert "[default: " in line or "required" in line, (path, line)
