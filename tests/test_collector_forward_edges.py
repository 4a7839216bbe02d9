"""The collector's forwarder rides the library's JetStream sink (issue 16): the store is the queue.

Real nats-servers (own store, own port, monitoring endpoint) and the real collector app under uvicorn.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import nats
import orjson
import pytest
from collector_server import CollectorServer, running_collector
from polling import poll

from otel_commerce._cli._natsserver import NatsServer, free_port
from otel_commerce.collector import EventStore, create_app
from otel_commerce.collector._store import ForwardState


def _post_events(url: str, prefix: str, n: int) -> None:
    events = [{"event": "referral_claimed", "event_id": f"{prefix}-{i}"} for i in range(n)]
    r = httpx.post(url + "/events", json={"events": events}, timeout=10)
    assert r.status_code == 200, r.text


def _states(store: EventStore, prefix: str) -> dict[int | None, int]:
    with store._lock:
        rows = store._db.execute(
            "SELECT forward_state, count(*) FROM events WHERE event_id LIKE ? GROUP BY forward_state", (prefix + "-%",)
        ).fetchall()
    return {row[0]: row[1] for row in rows}


async def _stream_count(url: str, stream: str) -> int:
    nc = await nats.connect(url)
    try:
        return int((await nc.jetstream().stream_info(stream)).state.messages)
    finally:
        await nc.close()


#: The library engine's caps, shortened for this test: the forwarder must obey none of them.
_AGE_CAP_SECONDS = 0.5
_ATTEMPT_CAP = 1


def test_broker_down_for_long_loses_nothing_and_every_row_is_forwarded_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NATS down for 5x the engine's age cap (shortened to 0.5 s, attempts to 1, through the settings a delivery
    engine would read): every row stays pending (never failed, never marked done unpublished), then, once the
    broker is up, every row is published exactly once and marked done."""
    monkeypatch.setenv("OTEL_COMMERCE_MAX_AGE_MS", str(int(_AGE_CAP_SECONDS * 1000)))
    monkeypatch.setenv("OTEL_COMMERCE_MAX_ATTEMPTS", str(_ATTEMPT_CAP))
    server = NatsServer(port=free_port(), store_dir=str(tmp_path / "js"))
    store = EventStore(tmp_path / "down.db")
    app = create_app(store, nats_url=server.url)
    forwarder = app.state.collector.forwarder
    try:
        with CollectorServer(app) as collector:
            _post_events(collector.url, "down", 40)
            stored_at = time.monotonic()
            # the broker stays down for 5x the age cap; nothing is given up, failed or marked done
            while time.monotonic() < stored_at + 5 * _AGE_CAP_SECONDS:  # an observation window, not a sync
                assert _states(store, "down") == {ForwardState.PENDING: 40}
                assert not forwarder.connected
                time.sleep(0.05)
            server.start()
            assert poll(lambda: _states(store, "down") == {ForwardState.DONE: 40}, timeout=20), _states(store, "down")
            assert asyncio.run(_stream_ids(server.url)) == sorted(f"down-{i}" for i in range(40))  # each once
            # counted right after the rows are marked done (the poll above can see them first)
            assert poll(lambda: (forwarder.forwarded, forwarder.failed) == (40, 0), timeout=10), forwarder.forwarded
    finally:
        server.close()
        store.close()


async def _stream_ids(url: str) -> list[str]:
    """The ``event_id`` of every message in COMMERCE, sorted (duplicates kept)."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe("commerce.>", ordered_consumer=True)
        total = int((await js.stream_info("COMMERCE")).state.messages)
        ids = [orjson.loads((await sub.next_msg(timeout=5)).data)["event_id"] for _ in range(total)]
        await sub.unsubscribe()
        return sorted(ids)
    finally:
        await nc.close()


def _connections(monitor_port: int) -> int:
    return int(httpx.get(f"http://127.0.0.1:{monitor_port}/connz", timeout=5).json()["num_connections"])


def test_connection_count_stays_flat_while_another_stream_owns_commerce_subjects(tmp_path: Path) -> None:
    """Stream setup fails (another stream owns commerce.>): one connection, kept; events still stored by it."""
    monitor = free_port()
    with NatsServer(extra_args=["-m", str(monitor)]) as server:

        async def other_stream() -> None:
            nc = await nats.connect(server.url)
            try:
                await nc.jetstream().add_stream(name="GO_SERVICES", subjects=["commerce.>"])
            finally:
                await nc.close()

        asyncio.run(other_stream())
        assert poll(lambda: _connections(monitor) == 0)
        with running_collector(tmp_path / "owned.db", nats_url=server.url) as (collector, store):
            _post_events(collector.url, "owned", 30)
            assert poll(lambda: _states(store, "owned") == {ForwardState.DONE: 30}, timeout=20)
            seen = []
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:  # deadline-bounded sampling of the connection count
                seen.append(_connections(monitor))
                time.sleep(0.1)
            assert max(seen) == 1, seen
            assert asyncio.run(_stream_count(server.url, "GO_SERVICES")) == 30
