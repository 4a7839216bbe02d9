"""``otel-commerce spool stats|replay|drop``: look into, replay now, or remove spooled events."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ._common import err_console, fail, out_console, parse_when, print_json_line

__all__ = ["spool_app"]

spool_app = typer.Typer(
    help="The local spool: events waiting on disk for a sink (see README, Guarantees).", rich_markup_mode=None
)

DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        metavar="PATH",
        help="Spool directory.  [default: $OTEL_COMMERCE_SPOOL_DIR or the per-user state dir]",
        show_default=False,
    ),
]


def _dir(path: Path | None) -> Path:
    from .._delivery._spool import default_dir

    return path if path is not None else default_dir()


@spool_app.command("stats")
def stats_command(
    directory: DirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine output: one JSON object.")] = False,
) -> None:
    """Files, events, bytes and the oldest file, per sink key (service + sinks); a warning on tmpfs/overlay."""
    from .._delivery._spool import filesystem_warning, scan

    d = _dir(directory)
    groups: dict[str, dict[str, Any]] = {}
    for f in scan(d):
        key = (f.key or {}).get("key") or {}
        g = groups.setdefault(
            str(key.get("digest", "?")),
            {"service": key.get("service", "?"), "sinks": key.get("sinks", []), "files": 0, "events": 0,
             "bytes": 0, "oldest": f.mtime, "owned_by_live_process": 0, "corrupt": 0},
        )  # fmt: skip
        g["files"] += 1
        g["events"] += f.events
        g["bytes"] += f.bytes
        g["oldest"] = min(g["oldest"], f.mtime)
        g["owned_by_live_process"] += int(f.alive)
        g["corrupt"] += f.corrupt
    warning = filesystem_warning(d) if d.is_dir() else None
    if as_json:
        for digest, g in groups.items():
            print_json_line({"key": digest, **g, "oldest": _iso(g["oldest"])})
        return
    if warning:
        err_console.print(f"[yellow]warning:[/] {warning}")
    table = Table(title=f"spool {d}")
    for col in ("key", "service", "sinks", "files", "events", "bytes", "oldest", "live owner"):
        table.add_column(col)
    for digest, g in groups.items():
        table.add_row(digest, g["service"], "\n".join(g["sinks"]), str(g["files"]), str(g["events"]),
                      str(g["bytes"]), _iso(g["oldest"]), str(g["owned_by_live_process"]))  # fmt: skip
    out_console.print(table if groups else f"spool {d}: empty")


@spool_app.command("replay")
def replay_command(
    directory: DirOption = None,
    timeout: Annotated[
        float, typer.Option("--timeout", metavar="SECONDS", help="Give up after this many seconds.")
    ] = 300.0,
) -> None:
    """Replay now the files of dead processes for the sinks configured here (OTEL_COMMERCE_* settings).

    Only files whose key matches this service and these sinks are replayed; exit code 1 when events are
    left on disk at the end (a sink still down: they stay spooled).
    """
    from .._config import Settings
    from .._runtime import build_engine

    d = _dir(directory)
    settings = Settings.from_env(spool_dir=str(d))
    if settings.spool == "off":
        settings = Settings.from_env(spool_dir=str(d), spool="spill")
    engine = build_engine(settings)
    if engine is None or engine.spool is None:
        fail("no sink configured: set OTEL_COMMERCE_NATS_URL and/or OTEL_COMMERCE_COLLECTOR_ENDPOINT", 2)
    from .._delivery._spool import read_file

    digest = engine.spool.key.digest
    total = sum(len(read_file(p).records) for p in d.glob(f"{digest}-*") if p.suffix in (".wal", ".spill"))
    engine.replay_spool()
    deadline = time.monotonic() + timeout
    with Progress(TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        task = bar.add_task("replay", total=total)
        while time.monotonic() < deadline:
            s = engine.stats()
            settled = s.get("replayed", 0) - s.get("queued", 0)
            bar.update(task, completed=max(min(settled, total), 0))
            if settled >= total and s.get("queued", 0) == 0:
                break
            time.sleep(0.1)
    engine.shutdown(10)
    s = engine.stats()
    out_console.print(
        f"replayed {s.get('replayed', 0)} event(s): exported {s.get('exported', 0)}, spooled again "
        f"{s.get('spooled', 0)}, rejected {s.get('rejected', 0)}"
    )
    if s.get("spooled", 0):
        raise typer.Exit(1)


@spool_app.command("drop")
def drop_command(
    before: Annotated[
        str,
        typer.Option(
            "--before", metavar="TIME", help="Drop files last written before this time or age (2h, 1d, 2025-01-31)."
        ),
    ],
    directory: DirOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete spooled events for good (files of dead processes last written before --before).

    Exit code 0 when files were dropped or none matched; 1 when the confirmation is answered no
    ("nothing dropped").
    """
    from .._delivery._spool import scan

    when = parse_when(before, option="--before")
    assert when is not None
    d = _dir(directory)
    victims = [f for f in scan(d) if not f.alive and f.mtime < when.timestamp()]
    events = sum(f.events for f in victims)
    if not victims:
        out_console.print("nothing to drop")
        return
    if not yes and not typer.confirm(f"Delete {len(victims)} file(s) with {events} event(s) for good?"):
        out_console.print("nothing dropped")
        raise typer.Exit(1)
    for f in victims:
        f.path.unlink(missing_ok=True)
    out_console.print(f"dropped {len(victims)} file(s), {events} event(s)")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")
