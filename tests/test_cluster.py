"""The replicated stream: bootstrap(replicas=3) on a real 3-node cluster, and a SIGKILLed stream leader."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid

import nats
import nats.errors
import pytest
from nats.js import errors as js_errors
from nats.js.api import StreamConfig
from polling import poll

from otel_commerce import bootstrap
from otel_commerce._cli._natsserver import NatsCluster
from otel_commerce._delivery import DeliveryEngine
from otel_commerce._model import Pending
from otel_commerce._model._catalog import event_from_args
from otel_commerce._sinks import JetStreamSink
from otel_commerce.subjects import STREAM_NAME

FAST = {"backoff_initial_seconds": 0.05, "backoff_max_seconds": 0.5, "linger_seconds": 0.005, "max_attempts": 200}


async def _fresh(url: str) -> nats.NATS:
    nc = await nats.connect(url.split(","), connect_timeout=2)
    with contextlib.suppress(js_errors.NotFoundError):
        await nc.jetstream().delete_stream(STREAM_NAME)
    return nc


async def test_bootstrap_creates_checks_and_reconciles_replicas(nats_cluster: NatsCluster) -> None:
    """replicas=3 creates an R3 stream; an R1 stream is reported, then scaled to R3 by reconcile."""
    nc = await _fresh(nats_cluster.url)
    try:
        js = nc.jetstream()
        created = await bootstrap(js, replicas=3)
        assert created.action == "created" and created.stream.config.num_replicas == 3
        assert (await bootstrap(js, replicas=3)).action == "unchanged"
        await js.delete_stream(STREAM_NAME)
        await js.add_stream(StreamConfig(name=STREAM_NAME, subjects=["commerce.>"], duplicate_window=600))
        differs = await bootstrap(js, replicas=3)
        assert differs.action == "differs" and differs.differences == ["replicas 1 is fewer than 3"]
        updated = await bootstrap(js, replicas=3, reconcile=True)
        assert updated.action == "updated" and updated.stream.config.num_replicas == 3
        print(f"\n[cluster] bootstrap: created R3, R1 differs, reconciled to R{updated.stream.config.num_replicas}")
    finally:
        await nc.close()


def test_stream_leader_sigkill_mid_stream_loses_and_duplicates_nothing(nats_cluster: NatsCluster) -> None:
    """SIGKILL the R3 stream's leader after a third of 3,000 events: all 3,000 stored once each."""
    n = 3000
    run = uuid.uuid4().hex[:8]

    async def setup() -> str:
        nc = await _fresh(nats_cluster.url)
        try:
            result = await bootstrap(nc.jetstream(), replicas=3)
            return str(result.stream.cluster.leader if result.stream.cluster else "")
        finally:
            await nc.close()

    leader = asyncio.run(setup())
    assert leader, "no stream leader"
    engine = DeliveryEngine([JetStreamSink(nats_cluster.url)], exit_hook=False, **FAST)  # type: ignore[arg-type]
    killed = threading.Event()
    try:
        for i in range(n):
            event, items = event_from_args(
                "order.completed",
                {
                    "order_id": f"cl_{run}_{i}",
                    "org_name": "org_1",
                    "user_id": "u",
                    "email": "a@b.co",
                    "total_cents": 100 + i,
                },
            )
            engine.submit(Pending(event=event, items=items))
            if i == n // 3:
                assert poll(lambda: engine.stats()["exported"] >= n // 4, 15)  # mid-stream, really flowing
                nats_cluster.server(leader).kill()
                killed.set()
            if i % 100 == 99:
                time.sleep(0.005)  # ~a few thousand events/s: the kill lands while events are in flight
        assert engine.flush(60), engine.stats()
        stats = engine.stats()
    finally:
        engine.shutdown(5)
    nats_cluster.server(leader).start()

    async def read() -> tuple[int, list[str]]:
        nc = await nats.connect(nats_cluster.url.split(","))
        try:
            js = nc.jetstream()
            info = await js.stream_info(STREAM_NAME)
            sub = await js.subscribe("commerce.>", ordered_consumer=True)
            ids = []
            for _ in range(info.state.messages):
                msg = await sub.next_msg(timeout=5)
                ids.append(msg.headers["Nats-Msg-Id"] if msg.headers else "")
            await sub.unsubscribe()
            return int(info.state.messages), ids
        finally:
            await nc.close()

    async def read_settled() -> tuple[int, list[str]]:
        """The restarted node may still be catching up (JetStream API timeouts while the cluster settles):
        bounded retries of the whole read, never of what it counts."""
        for attempt in range(20):
            try:
                return await read()
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError, TimeoutError) as exc:
                if attempt == 19:
                    raise AssertionError(f"the cluster did not settle for reading: {exc!r}") from exc
                await asyncio.sleep(0.5)
        raise AssertionError("unreachable")

    stored, ids = asyncio.run(read_settled())
    lost = n - len(set(ids))
    duplicated = len(ids) - len(set(ids))
    print(
        f"\n[cluster] leader {leader} SIGKILLed after {n // 3} of {n}: stored {stored}, lost {lost}, "
        f"duplicated {duplicated}, retried {stats['retried']}, dropped {stats['dropped']}"
    )
    assert killed.is_set()
    assert stored == n and lost == 0 and duplicated == 0
    assert stats["dropped"] == 0 and stats["exported"] == n


pytestmark = pytest.mark.timeout(120)
