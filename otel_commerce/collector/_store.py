"""``EventStore``: the collector's SQLite store (one file, WAL), deduplicated on ``event_id``.

Thread-safe (one connection behind a lock); the ASGI app calls it from a worker thread. Timestamps
are stored as fixed-width RFC 3339 text, so text order is time order and range queries use the index.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from .._errors import ConfigurationError
from .._model import parse_timestamp
from ._records import StoredEvent, store_timestamp

__all__ = ["DEFAULT_DB_PATH", "EventQuery", "EventStore", "ForwardState"]

#: Default database file (relative to the working directory); env ``OTEL_COMMERCE_COLLECTOR_DB``.
DEFAULT_DB_PATH = "otel-commerce-events.db"


class ForwardState:
    """Values of the ``forward_state`` column."""

    NOT_FORWARDED = None  # forwarding was off when the event was stored
    PENDING = 0
    DONE = 1
    FAILED = 2  # refused permanently (e.g. over the server's max payload)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT NOT NULL UNIQUE,
    source          TEXT NOT NULL,
    type            TEXT NOT NULL,
    name            TEXT NOT NULL,
    id              TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    session_id      TEXT NOT NULL,
    trace_id        TEXT NOT NULL,
    span_id         TEXT NOT NULL,
    timestamp       TEXT NOT NULL,
    received_at     TEXT NOT NULL,
    payload         TEXT NOT NULL,
    envelope        TEXT NOT NULL,
    forward_state   INTEGER
);
CREATE INDEX IF NOT EXISTS events_trace_id ON events (trace_id, timestamp);
CREATE INDEX IF NOT EXISTS events_organization_id ON events (organization_id, timestamp);
CREATE INDEX IF NOT EXISTS events_type ON events (type, timestamp);
CREATE INDEX IF NOT EXISTS events_timestamp ON events (timestamp);
CREATE INDEX IF NOT EXISTS events_forward_pending ON events (seq) WHERE forward_state = 0;
"""

_COLUMNS = (
    "seq, event_id, source, type, name, id, organization_id, user_id, session_id, trace_id, span_id, "
    "timestamp, received_at, payload, envelope"
)


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Filters of :meth:`EventStore.query` (all optional; ``types`` are OR-ed)."""

    trace_id: str | None = None
    types: Sequence[str] = ()
    organization_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100


def _row_to_event(row: sqlite3.Row) -> StoredEvent:
    return StoredEvent(
        seq=row["seq"],
        event_id=row["event_id"],
        source=row["source"],
        type=row["type"],
        name=row["name"],
        id=row["id"],
        organization_id=row["organization_id"],
        user_id=row["user_id"],
        session_id=row["session_id"],
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        timestamp=parse_timestamp(row["timestamp"]),
        received_at=parse_timestamp(row["received_at"]),
        payload=orjson.loads(row["payload"]),
        envelope=orjson.loads(row["envelope"]),
    )


class EventStore:
    """SQLite store of collector events. ``EventStore(path)`` creates the file and schema if needed."""

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_DB_PATH, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            if readonly:
                if not self.path.is_file():
                    raise ConfigurationError(f"no collector store at {self.path}")
                uri = f"{self.path.resolve().as_uri()}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=10)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(_SCHEMA)
                self._db.commit()
            self._db.row_factory = sqlite3.Row
        except sqlite3.Error as exc:
            raise ConfigurationError(f"cannot open the collector store {self.path}: {exc}") from exc

    # ---- writes ---------------------------------------------------------------------------------
    def insert(self, events: Iterable[StoredEvent], *, forward: bool = False) -> list[bool]:
        """Store ``events`` in one transaction; per event, True if new and False if a duplicate."""
        state = ForwardState.PENDING if forward else ForwardState.NOT_FORWARDED
        out: list[bool] = []
        with self._lock, self._db:
            for e in events:
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO events (event_id, source, type, name, id, organization_id, user_id, "
                    "session_id, trace_id, span_id, timestamp, received_at, payload, envelope, forward_state) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        e.event_id,
                        e.source,
                        e.type,
                        e.name,
                        e.id,
                        e.organization_id,
                        e.user_id,
                        e.session_id,
                        e.trace_id,
                        e.span_id,
                        store_timestamp(e.timestamp),
                        store_timestamp(e.received_at),
                        orjson.dumps(e.payload).decode(),
                        orjson.dumps(e.envelope).decode(),
                        state,
                    ),
                )
                inserted = cur.rowcount == 1
                if inserted and cur.lastrowid is not None:
                    e.seq = cur.lastrowid
                out.append(inserted)
        return out

    def pending_forward(self, limit: int = 256) -> list[StoredEvent]:
        """Events stored with forwarding on and not yet forwarded, oldest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM events WHERE forward_state = 0 ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [_row_to_event(r) for r in rows]

    def mark_forwarded(self, seqs: Sequence[int], state: int = ForwardState.DONE) -> None:
        if not seqs:
            return
        with self._lock, self._db:
            self._db.executemany("UPDATE events SET forward_state = ? WHERE seq = ?", [(state, s) for s in seqs])

    # ---- reads ----------------------------------------------------------------------------------
    def query(self, query: EventQuery | None = None, **filters: Any) -> list[StoredEvent]:
        """Events matching the filters, in time order; with a limit, the most recent ``limit`` of them."""
        q = query or EventQuery(**filters)
        where: list[str] = []
        args: list[Any] = []
        if q.trace_id:
            where.append("trace_id = ?")
            args.append(q.trace_id.lower())
        if q.types:
            where.append(f"type IN ({', '.join('?' * len(q.types))})")
            args.extend(q.types)
        if q.organization_id:
            where.append("organization_id = ?")
            args.append(q.organization_id)
        if q.since is not None:
            where.append("timestamp >= ?")
            args.append(store_timestamp(q.since))
        if q.until is not None:
            where.append("timestamp < ?")
            args.append(store_timestamp(q.until))
        sql = f"SELECT {_COLUMNS} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY timestamp DESC, seq DESC LIMIT ?"
        args.append(max(0, q.limit))
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [_row_to_event(r) for r in reversed(rows)]

    def get(self, event_id: str) -> StoredEvent | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM events WHERE event_id = ?", (event_id,)).fetchone()
        return _row_to_event(row) if row is not None else None

    def types(self) -> set[str]:
        """The distinct event types stored."""
        with self._lock:
            return {str(r[0]) for r in self._db.execute("SELECT DISTINCT type FROM events").fetchall()}

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM events").fetchone()[0])

    def pending_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM events WHERE forward_state = 0").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
