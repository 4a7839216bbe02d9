"""Process life-cycle: delivery at interpreter exit without flush, and after ``os.fork()``."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import nats
import pytest
from fake_collector import FakeCollector
from polling import poll
from streams import stored

from otel_commerce._cli._natsserver import NatsServer
from otel_commerce._compat import Client
from otel_commerce._delivery import DeliveryEngine
from otel_commerce._model import Pending, event_from_args
from otel_commerce._sinks import JetStreamSink


@pytest.fixture
def collector() -> Iterator[FakeCollector]:
    with FakeCollector() as fc:
        yield fc


_poll = poll


def _stream_ids(url: str, uid: str) -> set[str]:
    """Nats-Msg-Id of every message of this test (``uid``) in COMMERCE; each id must be stored once."""

    async def run() -> list[str]:
        nc = await nats.connect(url)
        try:
            return [(m.headers or {})["Nats-Msg-Id"] for m in await stored(nc.jetstream(), uid)]
        finally:
            await nc.close()

    ids = asyncio.run(run())
    assert len(ids) == len(set(ids)), "an event was stored twice"
    return set(ids)


def _wait_child(pid: int, timeout: float) -> int:
    """Exit code of the child, killing it if it has not finished within ``timeout``."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        tick.wait(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -999


def test_exit_without_flush_still_delivers_everything(
    collector: FakeCollector, nats_server: NatsServer, uid: str
) -> None:
    """A script that emits and simply exits delivers every event (atexit fallback) to both sinks."""
    script = f"""
from otel_commerce._compat import Client
from otel_commerce._delivery import DeliveryEngine
from otel_commerce._model import Pending, event_from_args
from otel_commerce._sinks import JetStreamSink

client = Client({collector.url!r})
for i in range(300):
    client.emit_referral_claimed("org_1", "usr_ref", f"usr_{{i}}", "CODE")
engine = DeliveryEngine([JetStreamSink({nats_server.url!r})])
for i in range(300):
    args = dict(order_id=f"exit_{uid}_{{i}}", org_name="org_1", user_id="u", email="a@b.co", total_cents=100)
    event, items = event_from_args("order.completed", args)
    engine.submit(Pending(event=event, items=items))
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert len(collector.events) == 300
    assert len(set(collector.event_ids())) == 300
    assert len(_stream_ids(nats_server.url, uid)) == 300


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_delivers_its_own_events_and_never_the_parents(
    collector: FakeCollector, nats_server: NatsServer, uid: str
) -> None:
    """After fork (with a lock held), the child delivers its events; the parent's queue is delivered once."""
    collector.delay_seconds = 0.2  # keep the parent's events queued and in flight at fork time
    client = Client(collector.url, linger_seconds=0, batch_size=10)
    engine = DeliveryEngine([JetStreamSink(nats_server.url)], linger_seconds=0)

    def order(name: str) -> Pending:
        args = {"order_id": name, "org_name": "org_1", "user_id": "u", "email": "", "total_cents": 100}
        event, items = event_from_args("order.completed", args)
        return Pending(event=event, items=items)

    parent_orders = [order(f"fork_parent_{uid}_{i}") for i in range(30)]
    for p in parent_orders:
        engine.submit(p)
    for i in range(50):
        client.emit_referral_claimed("org_1", "usr_ref", f"parent_{i}", "CODE")
    assert _poll(lambda: len(collector.headers_seen) >= 1)  # the parent's engine is mid-delivery

    held = client._engine._lock  # type: ignore[union-attr]
    held.acquire()  # a lock held at fork time must not deadlock the child
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            child_orders = [order(f"fork_child_{uid}_{i}") for i in range(10)]
            for p in child_orders:
                engine.submit(p)
            for i in range(20):
                client.emit_referral_claimed("org_1", "usr_ref", f"child_{i}", "CODE")
            ok = client.flush(15) and engine.flush(15)
            code = 0 if ok and engine.stats()["exported"] == 10 else 2
        finally:
            os._exit(code)
    held.release()
    assert _wait_child(pid, 40) == 0
    collector.delay_seconds = 0.0
    assert client.flush(15) and engine.flush(15)

    who = collections.Counter(e["distinct_id"] for e in collector.events)
    expected = {f"parent_{i}" for i in range(50)} | {f"child_{i}" for i in range(20)}
    assert set(who) == expected
    assert all(n == 1 for n in who.values()), [k for k, n in who.items() if n > 1]
    ids = _stream_ids(nats_server.url, uid)
    assert len(ids) == 40
    assert {p.event_id for p in parent_orders} <= ids
    client.close(5)
    engine.shutdown(5)
