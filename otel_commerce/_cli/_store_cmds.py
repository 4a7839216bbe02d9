"""``otel-commerce events`` (query the collector store) and the store half of ``otel-commerce trace``."""

from __future__ import annotations

import difflib
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from .._errors import ConfigurationError
from ..collector import EventQuery, EventStore
from ._common import event_json, fail, print_events, print_json_line

__all__ = ["check_types", "print_store_events", "query_store"]


def query_store(db: Path, query: EventQuery) -> list[tuple[dict[str, object], str]]:
    """``(envelope, source)`` of the matching stored events, in time order.

    Exits 2 with one message when ``db`` is not a collector store or a type is neither in the
    catalog nor in the store (a typo would otherwise silently match nothing).
    """
    try:
        with EventStore(db, readonly=True) as store:
            if query.types:
                check_types(query.types, store.types())
            return [(e.envelope, e.source) for e in store.query(query)]
    except ConfigurationError as exc:
        fail(f"{exc} (start `otel-commerce collector --db {db}` first, pass --db, or read the stream with --nats-url)", 2)
    except sqlite3.DatabaseError as exc:
        fail(f"{db} is not an otel-commerce collector store ({exc}); pass the --db the collector writes", 2)


def check_types(types: Sequence[str], stored: set[str]) -> None:
    """Exit 2 for a type that is neither a catalog type nor stored, suggesting the closest ones."""
    from .._model import CATALOG

    known = set(CATALOG) | stored
    for t in types:
        if t not in known:
            close = difflib.get_close_matches(t, sorted(known), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else "; see the README's event catalog"
            fail(f"--type {t!r} is neither a catalog event type nor in the store{hint}", 2)


def print_store_events(rows: list[tuple[dict[str, object], str]], *, as_json: bool, title: str) -> None:
    if as_json:
        for envelope, source in rows:
            print_json_line(event_json(envelope, source))
        return
    print_events(rows, title=title)


def events_title(count: int, since: datetime | None, until: datetime | None) -> str:
    span = ""
    if since is not None:
        span += f" since {since:%Y-%m-%d %H:%M:%S}"
    if until is not None:
        span += f" until {until:%Y-%m-%d %H:%M:%S}"
    return f"{count} event(s){span}"
