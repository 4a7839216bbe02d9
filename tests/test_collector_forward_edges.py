"""The collector's forwarder rides the library's JetStream sink (issue 16): the store is the queue.

Real nats-servers (own store, own port, monitoring endpoint) and the real collector app under uvicorn.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import nats
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


def test_broker_down_for_long_loses_nothing_and_every_row_is_forwarded_after(tmp_path: Path) -> None:
    """NATS down while events arrive (rows wait, never failed or given up), then up: every row forwarded once."""
    server = NatsServer(port=free_port(), store_dir=str(tmp_path / "js"))
    store = EventStore(tmp_path / "down.db")
    app = create_app(store, nats_url=server.url)
    forwarder = app.state.collector.forwarder
    try:
        with CollectorServer(app) as collector:
            _post_events(collector.url, "down", 40)
            # the broker stays down well past several connect attempts and backoffs; nothing is given up
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:  # a deadline-bounded observation window, not a synchronisation
                assert _states(store, "down") == {ForwardState.PENDING: 40}
                assert not forwarder.connected
                time.sleep(0.05)
            server.start()
            assert poll(lambda: _states(store, "down") == {ForwardState.DONE: 40}, timeout=20)
            assert asyncio.run(_stream_count(server.url, "COMMERCE")) == 40
            assert forwarder.failed == 0
    finally:
        server.close()
        store.close()


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
