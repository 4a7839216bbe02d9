"""Small helpers shared by the benchmark scripts (timing loops, medians, a local nats-server)."""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: Environment variables that would make otel-commerce build its own sinks: cleared so that a
#: benchmark only ever talks to the servers it starts on 127.0.0.1.
_SINK_ENV = (
    "OTEL_COMMERCE_NATS_URL",
    "PUBSUB_URL",
    "OTEL_COMMERCE_COLLECTOR_ENDPOINT",
    "ANALYTICS_ENDPOINT",
    "OTEL_COMMERCE_MODE",
    "OTEL_COMMERCE_PII",
)


def clean_env() -> None:
    for key in _SINK_ENV:
        os.environ.pop(key, None)


def per_call_ns(fn: Callable[..., Any], args: tuple[Any, ...], n: int) -> float:
    """Nanoseconds per ``fn(*args)`` over ``n`` calls (one timed loop)."""
    rng = range(n)
    t0 = time.perf_counter_ns()
    for _ in rng:
        fn(*args)
    return (time.perf_counter_ns() - t0) / n


def compare(
    ours: Callable[..., Any],
    bare: Callable[..., Any],
    *,
    n: int,
    repeats: int,
    args: tuple[Any, ...] = (),
    before: Callable[[], None] | None = None,
    after: Callable[[], None] | None = None,
) -> tuple[float, float, float]:
    """Median ns/call of ``ours`` and ``bare`` (alternating ABBA repeats after a warm-up) and the
    median of the per-repeat ratios. ``before``/``after`` run outside the timed loop of every repeat."""
    for fn in (ours, bare):  # warm-up: caches, lazy imports, the delivery thread's first connect
        if before:
            before()
        per_call_ns(fn, args, max(n // 4, 50))
        if after:
            after()
    times: dict[int, list[float]] = {0: [], 1: []}
    fns = (ours, bare)
    for r in range(repeats):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        for idx in order:
            if before:
                before()
            gc.collect()
            times[idx].append(per_call_ns(fns[idx], args, n))
            if after:
                after()
    ratios = [a / b for a, b in zip(times[0], times[1], strict=True)]
    return statistics.median(times[0]), statistics.median(times[1]), statistics.median(ratios)


def us(ns: float) -> str:
    return f"{ns / 1000:.2f} µs"


@contextmanager
def nats_server() -> Iterator[Any]:
    """A throw-away nats-server with JetStream on 127.0.0.1 (its own store, removed afterwards)."""
    from otel_commerce._cli._natsserver import NatsServer

    server = NatsServer().start()
    try:
        yield server
    finally:
        server.close()


class SinkWrapper:
    """Delegates the whole sink protocol to ``inner``; benchmark wrappers override what they measure."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name

    def prepare(self, pending: Any) -> Any:
        return self.inner.prepare(pending)

    async def send(self, items: Any) -> list[Any]:
        return list(await self.inner.send(items))

    async def start(self) -> None:
        await self.inner.start()

    def ready(self) -> bool:
        return bool(self.inner.ready())

    async def wait_ready(self, timeout_seconds: float) -> bool:
        return bool(await self.inner.wait_ready(timeout_seconds))

    async def close(self) -> None:
        await self.inner.close()

    def forget(self) -> None:
        self.inner.forget()
