"""Shared pieces of the commands: output (Rich table or JSON lines), time and id parsing, NATS, links."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .._errors import EventValidationError
from .._model import format_timestamp, parse_timestamp

__all__ = [
    "DEFAULT_NATS_URL",
    "check_port_free",
    "TRACE_URL_ENV",
    "JSON_KEYS",
    "err_console",
    "event_json",
    "event_line",
    "event_table",
    "fail",
    "normalize_type",
    "out_console",
    "parse_trace_id",
    "parse_when",
    "print_events",
    "print_json_line",
    "resolve_nats_url",
    "trace_link",
]

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
TRACE_URL_ENV = "OTEL_COMMERCE_TRACE_URL"

out_console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

_DURATION_RE = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)?)d)?\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*$"
)
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def check_port_free(host: str, port: int) -> None:
    """Exit 2 with one message when ``host:port`` cannot be bound (in use, or not an address of ours)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", 2)
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        if os.name != "nt":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind(address)
        except OSError as exc:
            reason = "the port is already in use" if exc.errno in (48, 98, 10048) else (exc.strerror or str(exc))
            fail(f"cannot listen on {host}:{port}: {reason} (choose another with --port)", 2)


def parse_duration(text: str) -> float | None:
    """``"90s"``, ``"10m"``, ``"1h30m"``, ``"2d"`` or a bare number of seconds; None if not a duration."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    m = _DURATION_RE.match(text)
    if m is None or not any(m.groups()):
        return None
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + s


def parse_when(text: str | None, *, option: str = "--since") -> datetime | None:
    """An RFC 3339 time, a date (``2025-01-31``, UTC) or a duration ago (``10m``, ``2h``, ``1d``)."""
    if text is None or text == "":
        return None
    seconds = parse_duration(text)
    if seconds is not None:
        return datetime.now(timezone.utc) - timedelta(seconds=seconds)
    try:
        return parse_timestamp(text)
    except EventValidationError:
        pass
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither a time (2025-01-31T12:00:00Z) nor a duration ago (10m, 2h, 1d)",
            param_hint=option,
        ) from None
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def parse_trace_id(text: str) -> str:
    """A W3C trace id, 32 lowercase hex digits (a ``traceparent`` value is accepted too)."""
    value = text.strip().lower()
    if value.count("-") == 3:  # a whole traceparent: 00-<trace>-<span>-01
        value = value.split("-")[1]
    if not _HEX32.match(value) or value == "0" * 32:
        raise typer.BadParameter(f"{text!r} is not a trace id (32 hex digits)", param_hint="TRACE_ID")
    return value


def normalize_type(text: str) -> str:
    """``commerce.order.completed`` / ``order_completed`` / ``order.completed`` → ``order.completed``."""
    from ..collector import type_for_name

    value = text.strip()
    if value.startswith("commerce."):
        value = value[len("commerce.") :]
    return type_for_name(value)


def resolve_nats_url(url: str | None) -> str:
    """The NATS URL to use; exits 2 when its scheme is not nats://, tls://, ws:// or wss://."""
    resolved = url or os.environ.get("OTEL_COMMERCE_NATS_URL") or os.environ.get("PUBSUB_URL") or DEFAULT_NATS_URL
    for part in resolved.split(","):
        if not part.strip().startswith(("nats://", "tls://", "ws://", "wss://")):
            from .._redact import redact_url

            fail(f"NATS URL {redact_url(part.strip())!r} must start with nats://, tls://, ws:// or wss://", 2)
    return resolved


def trace_link(trace_id: str) -> str | None:
    """The trace UI link from ``OTEL_COMMERCE_TRACE_URL`` (``{trace_id}`` is replaced), None when unset."""
    template = os.environ.get(TRACE_URL_ENV, "").strip()
    if not template or not trace_id:
        return None
    if "{trace_id}" in template:
        return template.replace("{trace_id}", trace_id)
    return template.rstrip("/") + "/" + trace_id


#: The keys of one event in ``--json`` output, in this order, whatever it was read from: the envelope's
#: fields (``CommerceEvent``), then ``source`` (``stream``, or the store's ``hanzo`` / ``otlp``).
JSON_KEYS = (
    "id",
    "type",
    "timestamp",
    "organization_id",
    "user_id",
    "session_id",
    "data",
    "event_id",
    "trace_id",
    "span_id",
    "source",
)


def event_json(envelope: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The one ``--json`` shape of an event (:data:`JSON_KEYS`), from a stored or a streamed envelope.

    Absent strings become ``""`` and absent ``data`` ``{}``; the timestamp is RFC 3339 UTC with
    trailing fractional zeros trimmed (``2025-01-31T12:00:00.5Z``, the wire format); the stream's GA4 / Meta blocks are left out.
    """
    out: dict[str, Any] = {key: envelope.get(key) or "" for key in JSON_KEYS[:-1]}
    out["data"] = envelope.get("data") or {}
    with contextlib.suppress(EventValidationError, TypeError, ValueError):  # else printed as found
        out["timestamp"] = format_timestamp(parse_timestamp(out["timestamp"]))
    out["source"] = source
    return out


def print_json_line(obj: Mapping[str, Any]) -> None:
    """One JSON object on one line of stdout, flushed (pipes see it at once)."""
    sys.stdout.write(orjson.dumps(obj).decode() + "\n")
    sys.stdout.flush()


def short_time(value: Any) -> str:
    if isinstance(value, str) and len(value) >= 19:
        return value[:10] + " " + value[11:23].rstrip("Z")
    return str(value or "")


def event_row(envelope: Mapping[str, Any], source: str, *, with_trace: bool) -> list[str]:
    row = [
        short_time(envelope.get("timestamp")),
        str(envelope.get("type", "")),
        str(envelope.get("organization_id", "")),
        str(envelope.get("id", "")),
        str(envelope.get("user_id", "")),
    ]
    if with_trace:
        row.append(str(envelope.get("trace_id", "")))
    row += [str(envelope.get("span_id", "")), str(envelope.get("event_id", "")), source]
    return row


#: Below this many columns (or when stdout is not a terminal) events print as one compact line each.
_TABLE_MIN_WIDTH = 150


def event_line(envelope: Mapping[str, Any], source: str, *, with_trace: bool = True) -> str:
    """One event on one line, every important field kept: ``time type org= id= user= trace= event_id= source``."""
    parts = [
        short_time(envelope.get("timestamp")),
        str(envelope.get("type", "")),
        f"org={envelope.get('organization_id', '')}",
        f"id={envelope.get('id', '')}",
        f"user={envelope.get('user_id', '')}",
    ]
    if with_trace:
        parts.append(f"trace={envelope.get('trace_id', '') or '-'}")
    parts += [f"event_id={envelope.get('event_id', '')}", f"source={source}"]
    return "  ".join(parts)


def print_events(rows: Sequence[tuple[Mapping[str, Any], str]], *, title: str, with_trace: bool = True) -> None:
    """A Rich table on a wide terminal; otherwise (80 columns, a pipe) a title and one compact line per event."""
    if out_console.is_terminal and out_console.width >= _TABLE_MIN_WIDTH:
        out_console.print(event_table(rows, title=title, with_trace=with_trace))
        return
    out_console.print(escape(title), soft_wrap=True)
    for envelope, source in rows:
        out_console.print(escape(event_line(envelope, source, with_trace=with_trace)), soft_wrap=True)


def event_table(rows: Iterable[tuple[Mapping[str, Any], str]], *, title: str, with_trace: bool = True) -> Table:
    """A Rich table of envelopes (time, type, organization, id, user, trace, span, event id, source)."""
    table = Table(title=title, title_justify="left", show_lines=False)
    for name in ("time (UTC)", "type", "organization", "id", "user"):
        table.add_column(name, no_wrap=name in ("time (UTC)", "type"))
    if with_trace:
        table.add_column("trace_id", no_wrap=True)
    for name in ("span_id", "event_id", "source"):
        table.add_column(name, no_wrap=True)
    for envelope, source in rows:
        table.add_row(*event_row(envelope, source, with_trace=with_trace))
    return table
