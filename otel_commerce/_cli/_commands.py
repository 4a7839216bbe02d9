"""The command functions (Typer signatures); ``otel_commerce.cli`` registers them on the app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from .._errors import ConfigurationError, EventValidationError, StreamError
from .._redact import redact, redact_url
from ._common import (
    check_port_free,
    err_console,
    event_json,
    fail,
    normalize_type,
    out_console,
    parse_duration,
    parse_trace_id,
    parse_when,
    print_events,
    print_json_line,
    resolve_nats_url,
    short_time,
    trace_link,
)

__all__ = [
    "bootstrap_command",
    "collector_command",
    "doctor_command",
    "events_command",
    "tail_command",
    "trace_command",
]

DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        metavar="PATH",
        help="Collector store (SQLite file).  [default: $OTEL_COMMERCE_COLLECTOR_DB or ./otel-commerce-events.db]",
        show_default=False,
    ),
]
NatsOption = Annotated[
    str | None,
    typer.Option(
        "--nats-url",
        metavar="URL",
        help="NATS server(s), comma-separated.  [default: $OTEL_COMMERCE_NATS_URL, $PUBSUB_URL or "
        "nats://127.0.0.1:4222]",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine output: one JSON object per line.")]
TypeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--type",
        "-t",
        metavar="TYPE",
        help="Event type (order.completed, commerce.order.completed or order_completed); repeatable.  "
        "[default: every type]",
        show_default=False,
    ),
]
OrgOption = Annotated[
    str | None,
    typer.Option("--org", "--organization", metavar="ORG", help="Organization id.  [default: every organization]"),
]
TraceIdOption = Annotated[
    str | None, typer.Option("--trace-id", metavar="TRACE_ID", help="Only events of this trace.  [default: every trace]")
]
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="TIME",
        help="Start time: RFC 3339 (2025-01-31T12:00:00Z) or a duration ago (10m, 2h, 1d).  [default: the oldest]",
    ),
]


def _db_path(db: Path | None) -> Path:
    import os

    from ..collector import DEFAULT_DB_PATH

    return db or Path(os.environ.get("OTEL_COMMERCE_COLLECTOR_DB") or DEFAULT_DB_PATH)


def _types(types: list[str] | None) -> tuple[str, ...]:
    from .._model import subject_for

    out = tuple(dict.fromkeys(normalize_type(t) for t in types or ()))
    for t in out:
        try:
            subject_for(t)
        except EventValidationError as exc:
            raise typer.BadParameter(str(exc), param_hint="--type") from None
    return out


def _time_range(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    start = parse_when(since)
    end = parse_when(until, option="--until")
    if start is not None and end is not None and start >= end:
        raise typer.BadParameter(
            f"--since ({start:%Y-%m-%d %H:%M:%S}) is not before --until ({end:%Y-%m-%d %H:%M:%S}); "
            "durations count back from now, so --since 2h --until 1h is the hour before last",
            param_hint="--since/--until",
        )
    return start, end


# --------------------------------------------------------------------------- collector
def collector_command(
    host: Annotated[
        str | None, typer.Option(metavar="ADDRESS", help="Address to bind.  [default: 127.0.0.1]", show_default=False)
    ] = None,
    port: Annotated[
        int | None, typer.Option(metavar="PORT", help="Port to listen on.  [default: 8091]", show_default=False)
    ] = None,
    db: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            help="SQLite store.  [default: $OTEL_COMMERCE_COLLECTOR_DB or ./otel-commerce-events.db]",
            show_default=False,
        ),
    ] = None,
    nats_url: Annotated[
        str | None,
        typer.Option(
            "--nats-url",
            metavar="URL",
            help="Forward every stored event to the COMMERCE stream at this NATS URL.  "
            "[default: $OTEL_COMMERCE_NATS_URL, else no forwarding]",
            show_default=False,
        ),
    ] = None,
    auth_token: Annotated[
        str | None,
        typer.Option(
            "--auth-token",
            metavar="TOKEN",
            help="Require 'Authorization: Bearer TOKEN' (except /health). Visible in the process list: prefer "
            "--auth-token-file or $OTEL_COMMERCE_COLLECTOR_TOKEN(_FILE).  [default: $OTEL_COMMERCE_COLLECTOR_TOKEN, "
            "else no auth]",
            show_default=False,
        ),
    ] = None,
    auth_token_file: Annotated[
        Path | None,
        typer.Option(
            "--auth-token-file",
            metavar="PATH",
            help="Read the bearer token from this file.  [default: $OTEL_COMMERCE_COLLECTOR_TOKEN_FILE]",
            show_default=False,
        ),
    ] = None,
    max_body_bytes: Annotated[
        int | None,
        typer.Option(
            "--max-body-bytes",
            metavar="BYTES",
            help="Largest request body, also after gzip.  [default: 5 MiB]",
            show_default=False,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            metavar="PATH",
            help="YAML settings file (see collector-config/otel-commerce-collector.yaml); arguments override it.  "
            "[default: none]",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option("--log-level", metavar="LEVEL", help="uvicorn log level.  [default: info]", show_default=False),
    ] = None,
) -> None:
    """Run the local collector: Hanzo collector API + OTLP/HTTP logs, stored in SQLite, optionally forwarded."""
    from ..collector import require_collector_extra

    try:
        require_collector_extra()
        from ..collector import load_settings

        settings = load_settings(
            config,
            host=host,
            port=port,
            db=str(db) if db is not None else None,
            nats_url=nats_url,
            auth_token=auth_token,
            auth_token_file=auth_token_file,
            max_body_bytes=max_body_bytes,
            log_level=log_level,
        )
    except ConfigurationError as exc:
        fail(redact(str(exc)), 2)
    from ..collector import exposure_warning, serve

    check_port_free(settings.host, settings.port)
    err_console.print(
        f"otel-commerce collector on http://{settings.host}:{settings.port} → {settings.db}"
        + (f", forwarding to {redact_url(settings.nats_url)}" if settings.nats_url else "")
        + (" (bearer auth on)" if settings.auth_token else "")
    )
    warning = exposure_warning(settings)
    if warning:
        err_console.print(f"[bold red]WARNING:[/] {escape(warning)}")
    serve(settings)


# --------------------------------------------------------------------------- trace
def trace_command(
    trace_id: Annotated[
        str,
        typer.Argument(
            metavar="TRACE_ID", help="The trace id (32 hex digits) or a whole traceparent.", show_default=False
        ),
    ],
    db: DbOption = None,
    nats_url: Annotated[
        str | None,
        typer.Option(
            "--nats-url",
            metavar="URL",
            help="Read the COMMERCE stream at this URL instead of the collector store.  [default: read the store]",
            show_default=False,
        ),
    ] = None,
    since: SinceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every commerce event of one trace, in time order (exit code 1 when there is none)."""
    try:
        tid = parse_trace_id(trace_id)
    except typer.BadParameter as exc:  # one `error:` line, exit 2 (not click's usage block)
        fail(exc.message, 2)
    start = parse_when(since)
    rows: list[tuple[dict[str, Any], str]]
    if nats_url:
        from ._stream import EventFilter, connect, scan_stream

        nats_url = resolve_nats_url(nats_url)

        async def scan() -> list[dict[str, Any]]:
            nc = await connect(nats_url)
            try:
                return await scan_stream(nc, EventFilter(trace_id=tid, since=start))
            finally:
                await nc.close()

        found = asyncio.run(scan())
        found.sort(key=lambda e: str(e.get("timestamp", "")))
        rows = [(e, "stream") for e in found]
    else:
        from ..collector import EventQuery
        from ._store_cmds import query_store

        rows = query_store(_db_path(db), EventQuery(trace_id=tid, since=start, limit=100_000))
    link = trace_link(tid)
    if as_json:
        for envelope, source in rows:
            print_json_line(event_json(envelope, source))
        if link:
            err_console.print(f"trace: {link}")
    else:
        print_events(rows, title=f"{len(rows)} event(s) in trace {tid}", with_trace=False)
        if link:
            out_console.print(f"trace: [link={link}]{link}[/link]")
    if not rows:
        raise typer.Exit(1)


# --------------------------------------------------------------------------- events
def events_command(
    db: DbOption = None,
    types: TypeOption = None,
    org: OrgOption = None,
    trace_id: TraceIdOption = None,
    since: SinceOption = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until", metavar="TIME", help="End time (exclusive): RFC 3339 or a duration ago.  [default: none]"
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", metavar="N", min=1, help="At most this many (the most recent).")
    ] = 50,
    as_json: JsonOption = False,
) -> None:
    """Query the collector store by type, organization, trace and time range (oldest first)."""
    from ..collector import EventQuery
    from ._store_cmds import events_title, print_store_events, query_store

    start, end = _time_range(since, until)
    query = EventQuery(
        trace_id=parse_trace_id(trace_id) if trace_id else None,
        types=_types(types),
        organization_id=org,
        since=start,
        until=end,
        limit=limit,
    )
    rows = query_store(_db_path(db), query)
    print_store_events(rows, as_json=as_json, title=events_title(len(rows), start, end))


# --------------------------------------------------------------------------- tail
def tail_command(
    nats_url: NatsOption = None,
    types: TypeOption = None,
    org: OrgOption = None,
    trace_id: TraceIdOption = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="TIME",
            help="Replay from this time (RFC 3339 or a duration ago) before following.  [default: now]",
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", "-n", metavar="N", min=1, help="Stop after this many events.  [default: no limit]"),
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option("--for", metavar="DURATION", help="Stop after this long (30s, 5m).  [default: until Ctrl-C]"),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Follow live events of the COMMERCE stream, filtered by type, organization or trace (Ctrl-C stops)."""
    from ._stream import EventFilter, connect, tail_stream

    seconds = None
    if duration is not None:
        seconds = parse_duration(duration)
        if seconds is None or seconds <= 0:
            raise typer.BadParameter(f"{duration!r} is not a duration (30s, 5m)", param_hint="--for")
    flt = EventFilter(
        types=_types(types),
        organization_id=org,
        trace_id=parse_trace_id(trace_id) if trace_id else None,
        since=parse_when(since),
    )
    url = resolve_nats_url(nats_url)

    def show(envelope: dict[str, Any]) -> None:
        if as_json:
            print_json_line(event_json(envelope, "stream"))
            return
        tid = str(envelope.get("trace_id", ""))
        link = trace_link(tid)
        trace = f"[link={link}]{tid}[/link]" if link else tid
        out_console.print(
            f"{short_time(envelope.get('timestamp'))}  [bold]{envelope.get('type', '')}[/]  "
            f"org={envelope.get('organization_id', '')} id={envelope.get('id', '')} "
            f"event_id={envelope.get('event_id', '')} trace={trace or '-'}"
        )

    async def follow() -> None:
        nc = await connect(url)
        try:
            if not as_json:
                err_console.print(f"following {flt.subject} on {url} (Ctrl-C to stop)")
            await tail_stream(nc, flt, show, limit=limit, duration_seconds=seconds)
        finally:
            await nc.close()

    try:
        asyncio.run(follow())
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


# --------------------------------------------------------------------------- bootstrap
def bootstrap_command(
    nats_url: NatsOption = None,
    reconcile: Annotated[
        bool,
        typer.Option("--reconcile", help="Update an existing stream (subjects, duplicate window); never its data."),
    ] = False,
    duplicate_window: Annotated[
        str,
        typer.Option(
            "--duplicate-window",
            metavar="DURATION",
            help="Duplicate window the stream needs (seconds or 2m, 10m, 1h).",
        ),
    ] = "10m",
    replicas: Annotated[
        int | None,
        typer.Option(
            "--replicas",
            metavar="N",
            min=1,
            max=5,
            help="Replica count (3 on a JetStream cluster); an existing stream with fewer is reported.  "
            "[default: 1 for a new stream; an existing one is not checked]",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create the COMMERCE stream, or check (and with --reconcile update) an existing one.

    --replicas 3 creates a replicated stream (needs a cluster of >= 3 servers; give several URLs,
    comma-separated, e.g. nats://a:4222,nats://b:4222,nats://c:4222).

    Exit code 1 when the stream exists and differs (without --reconcile) or cannot be changed.
    """
    from .._sinks import bootstrap
    from ._stream import connect

    window = parse_duration(duplicate_window)
    if window is None or window <= 0:
        raise typer.BadParameter(
            f"{duplicate_window!r} is not a duration (120, 2m, 10m)", param_hint="--duplicate-window"
        )
    url = resolve_nats_url(nats_url)

    async def run() -> dict[str, Any]:
        nc = await connect(url)
        try:
            result = await bootstrap(
                nc.jetstream(), reconcile=reconcile, duplicate_window=window, replicas=replicas
            )
        finally:
            await nc.close()
        cfg = result.stream.config
        return {
            "stream": cfg.name,
            "action": result.action,
            "subjects": list(cfg.subjects or []),
            "duplicate_window_seconds": float(cfg.duplicate_window or 0.0),
            "replicas": int(cfg.num_replicas or 1),
            "messages": int(result.stream.state.messages or 0),
            "differences": result.differences,
        }

    import logging

    lib_logger = logging.getLogger("otel_commerce")
    level = lib_logger.level
    lib_logger.setLevel(logging.ERROR)  # the library's "stream differs" WARNING: printed below, once, in CLI words
    try:
        report = asyncio.run(run())
    except StreamError as exc:
        fail(str(exc).replace("reconcile=True or ", ""), 1)
    finally:
        lib_logger.setLevel(level)
    if as_json:
        print_json_line(report)
    else:
        colour = {"created": "green", "updated": "green", "unchanged": "green", "differs": "yellow"}[report["action"]]
        out_console.print(
            f"stream [bold]{report['stream']}[/]: [{colour}]{report['action']}[/] — subjects {report['subjects']}, "
            f"duplicate window {report['duplicate_window_seconds']:g}s, replicas {report['replicas']}, "
            f"{report['messages']} message(s)"
        )
        for diff in report["differences"]:
            out_console.print(f"  • {escape(diff.replace('duplicate_window', 'duplicate window'))}")
        if report["action"] == "differs":
            out_console.print("run again with --reconcile to update it")
    if report["action"] == "differs":
        raise typer.Exit(1)


# --------------------------------------------------------------------------- doctor
@contextlib.contextmanager
def _recorded_setting_problems() -> Iterator[list[tuple[int, str]]]:
    """``(level, message)`` of every WARNING/ERROR the ``otel_commerce`` logger emits inside the block."""
    found: list[tuple[int, str]] = []

    class _Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            found.append((record.levelno, record.getMessage().removeprefix("otel-commerce: ")))

    handler = _Recorder(logging.WARNING)
    log = logging.getLogger("otel_commerce")
    log.addHandler(handler)
    try:
        yield found
    finally:
        log.removeHandler(handler)


def doctor_command(
    nats_url: Annotated[
        str | None,
        typer.Option(
            "--nats-url",
            metavar="URL",
            help="Check this NATS URL.  [default: $OTEL_COMMERCE_NATS_URL or $PUBSUB_URL, else no NATS sink]",
            show_default=False,
        ),
    ] = None,
    collector_endpoint: Annotated[
        str | None,
        typer.Option(
            "--collector-endpoint",
            metavar="URL",
            help="Check this collector.  [default: $OTEL_COMMERCE_COLLECTOR_ENDPOINT or $ANALYTICS_ENDPOINT, else no "
            "collector sink]",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", metavar="SECONDS", min=0.1, help="Seconds per network check.")
    ] = 3.0,
    as_json: JsonOption = False,
) -> None:
    """Show the effective settings (secrets masked) and where each came from, then check every sink.

    Exit code 1 when a check fails, with one line of fix per problem.
    """
    from .._config import Settings
    from ._doctor import Check, run_checks, setting_sources

    arguments = {"nats_url": nats_url, "collector_endpoint": collector_endpoint}
    settings: Settings | None = None
    checks: list[Check] = []
    with _recorded_setting_problems() as logged:
        try:
            settings = Settings.from_env(None, nats_url=nats_url, collector_endpoint=collector_endpoint)
        except ConfigurationError as exc:
            checks = [Check("settings", False, redact(str(exc)), "fix the variable named above")]
    rows: list[tuple[str, str, str]] = []
    if settings is not None:
        # what reading the environment logged: an ERROR disabled a sink (name that variable, not "set one")
        for level, message in logged:
            warning = level < logging.ERROR
            checks.append(Check("settings", warning, redact(message), "fix the variable named above", warning))
        rows = setting_sources(settings, arguments=arguments)
        disabled = any(level >= logging.ERROR for level, _ in logged)
        checks += run_checks(settings, timeout_seconds=timeout, sinks_disabled=disabled)
    problems = [c for c in checks if not c.ok]
    if as_json:
        print_json_line(
            {
                "settings": {name: {"value": value, "source": source} for name, value, source in rows},
                "checks": [
                    {"name": c.name, "ok": c.ok, "warning": c.warning, "detail": c.detail, "fix": c.fix}
                    for c in checks
                ],
                "ok": not problems,
            }
        )
    else:
        from rich.table import Table

        table = Table(title="settings", title_justify="left", show_edge=False, pad_edge=False)
        for column in ("setting", "value", "source"):
            table.add_column(column, overflow="fold")
        for name, value, source in rows:
            table.add_row(name, escape(value), source)
        if rows:
            out_console.print(table)
        for c in checks:
            mark = "[bold red]FAIL[/]" if not c.ok else "[yellow]WARN[/]" if c.warning else "[green]ok[/]  "
            out_console.print(f"{mark} {escape(c.name)}: {escape(c.detail)}")
            if c.fix:
                out_console.print(f"     fix: {escape(c.fix)}")
        out_console.print(
            "[green]everything looks right[/]" if not problems else f"[bold red]{len(problems)} problem(s)[/]"
        )
    if problems:
        raise typer.Exit(1)
