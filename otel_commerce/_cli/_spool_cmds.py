"""``otel-commerce spool stats|replay|drop``: look into, replay now, or remove spooled events."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ._common import _TABLE_MIN_WIDTH, err_console, fail, out_console, parse_when, print_json_line

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
    """The spool directory: ``--dir`` (which must be a directory: else exit 2), else the default one."""
    from .._delivery._spool import default_dir

    if path is None:
        return default_dir()
    if not path.is_dir():
        fail(f"--dir {path}: {'not a directory' if path.exists() else 'no such directory'}", 2)
    return path


def _digest_of(name: str) -> str:
    return name.split("-", 1)[0]


def _disk_use(d: Path) -> dict[str, dict[str, int]]:
    """Per key digest (file name prefix): bytes on disk (``du``: preallocated segments in full) of every file
    (data, ``.next`` spares, ``.lock`` files), and the count of spares and lockfiles."""
    out: dict[str, dict[str, int]] = {}
    for path in sorted(d.iterdir()) if d.is_dir() else []:
        try:
            st = path.stat()
        except OSError:
            continue
        g = out.setdefault(_digest_of(path.name), {"disk_bytes": 0, "spares": 0, "locks": 0})
        g["disk_bytes"] += st.st_blocks * 512 if hasattr(st, "st_blocks") else st.st_size
        g["spares"] += path.name.endswith(".next")
        g["locks"] += path.name.endswith(".lock")
    return out


def _groups(d: Path) -> dict[str, dict[str, Any]]:
    from .._delivery._spool import scan

    groups: dict[str, dict[str, Any]] = {}

    def group(digest: str, service: str, sinks: list[str], oldest: float) -> dict[str, Any]:
        return groups.setdefault(
            digest,
            {"service": service, "sinks": sinks, "files": 0, "events": 0, "bytes": 0, "disk_bytes": 0,
             "spares": 0, "locks": 0, "oldest": oldest, "owned_by_live_process": 0, "corrupt": 0},
        )  # fmt: skip

    for f in scan(d):
        key = (f.key or {}).get("key") or {}
        g = group(str(key.get("digest") or _digest_of(f.path.name)), key.get("service", "?"), key.get("sinks", []), f.mtime)
        g["files"] += 1
        g["events"] += f.events
        g["bytes"] += f.bytes
        g["oldest"] = min(g["oldest"], f.mtime)
        g["owned_by_live_process"] += int(f.alive)
        g["corrupt"] += f.corrupt
    for digest, use in _disk_use(d).items():
        group(digest, "?", [], 0.0).update(use)  # a key with only spares / lockfiles left: no service known
    return groups


@spool_app.command("stats")
def stats_command(
    directory: DirOption = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Machine output: one JSON object (directory, totals, warning, and \"keys\": one entry per sink key).",
        ),
    ] = False,
) -> None:
    """Files, events, bytes (of records; on disk incl. spare segments and lockfiles) and the oldest file, per
    sink key (service + sinks); a warning on tmpfs/overlay. Exit 2 when --dir is not a directory."""
    from .._delivery._spool import filesystem_warning

    d = _dir(directory)
    groups = _groups(d)
    warning = filesystem_warning(d) if d.is_dir() else None
    totals = {k: sum(int(g[k]) for g in groups.values()) for k in ("files", "events", "bytes", "disk_bytes")}
    if as_json:
        keys = [{"key": digest, **g, "oldest": _iso(g["oldest"]) if g["files"] else None} for digest, g in groups.items()]
        print_json_line({"directory": str(d), **totals, "warning": warning, "keys": keys})
        return
    if warning:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}")
    if not groups:
        out_console.print(escape(f"spool {d}: empty"))
        return
    if not (out_console.is_terminal and out_console.width >= _TABLE_MIN_WIDTH):  # a pipe or a narrow terminal
        out_console.print(escape(
            f"spool {d}: {totals['files']} file(s), {totals['events']} event(s), {totals['bytes']} bytes "
            f"({totals['disk_bytes']} on disk)"), soft_wrap=True)  # fmt: skip
        for digest, g in groups.items():
            line = (
                f"key={digest}  service={g['service']}  sinks={','.join(g['sinks']) or '-'}  files={g['files']}  "
                f"events={g['events']}  bytes={g['bytes']}  disk={g['disk_bytes']}  spares={g['spares']}  "
                f"locks={g['locks']}  oldest={_iso(g['oldest']) if g['files'] else '-'}  "
                f"live_owner={g['owned_by_live_process']}"
            )
            out_console.print(escape(line), soft_wrap=True)
        return
    table = Table(title=f"spool {d}")
    for col in ("key", "service", "sinks", "files", "events", "bytes", "on disk", "oldest", "live owner"):
        table.add_column(col, no_wrap=col != "sinks")
    for digest, g in groups.items():
        table.add_row(digest, g["service"], "\n".join(g["sinks"]), str(g["files"]), str(g["events"]),
                      str(g["bytes"]), str(g["disk_bytes"]), _iso(g["oldest"]) if g["files"] else "-",
                      str(g["owned_by_live_process"]))  # fmt: skip
    out_console.print(table)


@spool_app.command("replay")
def replay_command(
    directory: DirOption = None,
    timeout: Annotated[
        float, typer.Option("--timeout", metavar="SECONDS", help="Give up after this many seconds.")
    ] = 300.0,
) -> None:
    """Replay now the files of dead processes for the sinks configured here (OTEL_COMMERCE_* settings).

    Only files whose key matches this service and these sinks are replayed; exit code 1 when events are
    left on disk at the end (a sink still down, or files of other sink keys: run `spool stats` to see them,
    replay them with that service's settings or remove them with `spool drop`).
    """
    from .._config import Settings
    from .._delivery._spool import SpoolKey, scan
    from .._runtime import build_engine

    d = _dir(directory)
    settings = Settings.from_env(spool_dir=str(d))
    if settings.spool == "off":
        settings = Settings.from_env(spool_dir=str(d), spool="spill")
    if settings.disabled or not settings.has_sink:
        fail("no sink configured: set OTEL_COMMERCE_NATS_URL and/or OTEL_COMMERCE_COLLECTOR_ENDPOINT", 2)
    waiting: dict[str, int] = {}  # events of dead owners per key, before the engine adopts (renames) them
    for f in scan(d):
        if not f.alive:
            waiting[_digest_of(f.path.name)] = waiting.get(_digest_of(f.path.name), 0) + f.events
    engine = build_engine(settings)
    if engine is None or engine.spool is None:
        fail("no sink configured: set OTEL_COMMERCE_NATS_URL and/or OTEL_COMMERCE_COLLECTOR_ENDPOINT", 2)
    key: SpoolKey = engine.spool.key
    total = waiting.get(key.digest, 0)
    engine.replay_spool()
    deadline = time.monotonic() + timeout
    try:
        with Progress(TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
            task = bar.add_task("replay", total=total)
            while time.monotonic() < deadline:
                s = engine.stats()
                settled = s.get("replayed", 0) - s.get("queued", 0)
                bar.update(task, completed=max(min(settled, total), 0))
                if settled >= total and s.get("queued", 0) == 0:
                    break
                time.sleep(0.1)
    finally:
        engine.shutdown(10)
    s = engine.stats()
    out_console.print(
        f"replayed {s.get('replayed', 0)} event(s) for {key.service} ({', '.join(key.sinks)}): exported "
        f"{s.get('exported', 0)}, spooled again {s.get('spooled', 0)}, rejected {s.get('rejected', 0)}"
    )
    left = [f for f in scan(d) if not f.alive and f.events]
    ours = sum(f.events for f in left if _digest_of(f.path.name) == key.digest)
    others: dict[str, int] = {}
    for f in left:
        if _digest_of(f.path.name) != key.digest:
            other = (f.key or {}).get("key") or {}
            label = f"{other.get('service', '?')} ({', '.join(other.get('sinks', [])) or 'unknown sinks'})"
            others[label] = others.get(label, 0) + f.events
    if ours:
        err_console.print(f"{ours} event(s) for these sinks left on disk (a sink still down?): run replay again later")
    for label, n in others.items():
        err_console.print(
            escape(f"{n} event(s) left on disk for another sink key: {label} — replay them with that service's "
                   "settings (OTEL_SERVICE_NAME, sink URLs) or remove them with `otel-commerce spool drop`")
        )  # fmt: skip
    if ours or others:
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

    The spare segments (``.next``, no event) and lockfiles of dead processes go too (never a live process's:
    its lock is probed, as adoption does). Exit code 0 when files were dropped or none matched; 1 when the
    confirmation is answered no ("nothing dropped"); 2 when --dir is not a directory.
    """
    from .._delivery._spool import scan

    when = parse_when(before, option="--before")
    assert when is not None
    d = _dir(directory)
    victims = [f for f in scan(d) if not f.alive and f.mtime < when.timestamp()]
    events = sum(f.events for f in victims)
    if victims:
        if not yes and not typer.confirm(f"Delete {len(victims)} file(s) with {events} event(s) for good?"):
            out_console.print("nothing dropped")
            raise typer.Exit(1)
        for f in victims:
            f.path.unlink(missing_ok=True)
    spares, locks, freed = _sweep_dead_owners(d)
    extra = f"; removed {spares} spare segment(s) ({freed} bytes) and {locks} lockfile(s) of dead processes"
    if not victims:
        out_console.print("nothing to drop" + (extra if spares or locks else ""))
        return
    out_console.print(f"dropped {len(victims)} file(s), {events} event(s)" + (extra if spares or locks else ""))


#: A lockfile younger than this whose process id runs is left alone: its owner may be between creating it
#: and locking it (``Spool._ensure_open``).
_YOUNG_LOCK_SECONDS = 10.0


def _sweep_dead_owners(d: Path) -> tuple[int, int, int]:
    """Remove the ``.next`` spares of dead owners, and their lockfiles when no data file of theirs is left.

    A dead owner is one whose lock can be taken (``flock``, non-blocking; held while removing, as adoption
    does): a live process's files are never touched. Returns (spares, lockfiles, bytes freed).
    """
    import fcntl
    import os

    try:
        names = sorted(os.listdir(d))
    except OSError:
        return 0, 0, 0
    stems: dict[str, list[str]] = {}
    for name in names:
        stems.setdefault(name.split(".", 1)[0], []).append(name)
    spares = locks = freed = 0
    for stem, files in stems.items():
        locking = d / f"{stem}.locking"
        # (its pid checked first: a probe's flock while its owner starts would make the owner's own flock fail)
        if locking.name in files and not _maybe_starting(locking, stem) and _free_lock(locking):
            locks += 1  # killed between creating it and its rename to .lock (Spool._ensure_open): nothing else
            freed += _unlink(locking)
        lock_name = f"{stem}.lock"
        if lock_name not in files and not any(n.endswith(".next") for n in files):
            continue
        fd = -1
        if lock_name in files:
            try:
                fd = os.open(d / lock_name, os.O_RDWR | os.O_CLOEXEC)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                if fd >= 0:
                    os.close(fd)
                continue  # held: its owner lives
            if _maybe_starting(d / lock_name, stem):
                os.close(fd)
                continue
        try:
            kept = False  # a spare that holds records (its rename to .wal lost in a crash) is data adoption replays
            for name in files:
                if name.endswith(".next"):
                    if _holds_records(d / name):
                        kept = True
                        continue
                    freed += _unlink(d / name)
                    spares += 1
            if kept:
                continue  # its lockfile stays too: without it adoption would never take the spare
            if lock_name in files and not any(n.endswith((".wal", ".spill")) for n in os.listdir(d) if n.startswith(stem + ".")):
                freed += _unlink(d / lock_name)
                locks += 1
        finally:
            if fd >= 0:
                os.close(fd)  # (our probe lock goes with it)
    return spares, locks, freed


def _free_lock(path: Path) -> bool:
    """Whether ``path`` exists and no process holds its ``flock`` (the spool's own probe)."""
    from .._delivery._spool import lock_held

    try:
        return path.exists() and not lock_held(path)
    except OSError:
        return False


def _holds_records(path: Path) -> bool:
    from .._delivery._spool import spare_holds_records

    try:
        return spare_holds_records(path)
    except OSError:
        return True  # unreadable now: never delete what may be data


def _maybe_starting(lock: Path, stem: str) -> bool:
    import os

    try:
        pid = int(stem.split("-")[1])
        young = time.time() - lock.stat().st_mtime < _YOUNG_LOCK_SECONDS
    except (IndexError, ValueError, OSError):
        return False
    if not young:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _unlink(path: Path) -> int:
    try:
        size = path.stat().st_blocks * 512
        path.unlink()
    except OSError:
        return 0
    return size


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")
