"""``otel-commerce events`` (query the collector store) and the store half of ``otel-commerce trace``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from .._errors import ConfigurationError
from ..collector import EventQuery, EventStore
from ._common import event_table, fail, out_console, print_json_line

__all__ = ["print_store_events", "query_store"]


def query_store(db: Path, query: EventQuery) -> list[tuple[dict[str, object], str]]:
    """``(envelope, source)`` of the matching stored events, in time order."""
    try:
        with EventStore(db, readonly=True) as store:
            return [(e.envelope, e.source) for e in store.query(query)]
    except ConfigurationError as exc:
        fail(f"{exc} (start `otel-commerce collector --db {db}` first, or pass --db)", 2)


def print_store_events(rows: list[tuple[dict[str, object], str]], *, as_json: bool, title: str) -> None:
    if as_json:
        for envelope, _ in rows:
            print_json_line(envelope)
        return
    out_console.print(event_table(rows, title=title))


def events_title(count: int, since: datetime | None, until: datetime | None) -> str:
    span = ""
    if since is not None:
        span += f" since {since:%Y-%m-%d %H:%M:%S}"
    if until is not None:
        span += f" until {until:%Y-%m-%d %H:%M:%S}"
    return f"{count} event(s){span}"
