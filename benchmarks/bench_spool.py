"""The spool's cost, in one run: memory mode (spool off) vs ``spill`` vs ``wal`` (fsync none / grouped).

    python benchmarks/bench_spool.py [--events 20000] [--runs 3]

For each mode, on a fresh nats-server (JetStream, temp store) and a fresh spool directory:

1. caller's-thread cost of ``DeliveryEngine.submit`` per event (µs; the ``wal`` append is one ``write()``
   there), events pre-built so event construction is excluded;
2. delivery throughput: first ``submit`` to ``flush`` returning (events/s), and its ratio to memory mode.

``always`` is measured on a smaller count (one ``fsync`` per event: milliseconds on most disks).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from otel_commerce._cli._natsserver import NatsServer
from otel_commerce._delivery import DeliveryEngine
from otel_commerce._delivery._spool import Spool as _Spool
from otel_commerce._delivery._spool import SpoolKey
from otel_commerce._model import Pending
from otel_commerce._model._catalog import event_from_args
from otel_commerce._model._pending import decode_pending, encode_pending
from otel_commerce._sinks import JetStreamSink


def Spool(*args: Any, **kwargs: Any) -> _Spool:
    """A spool with the event record's codec (what ``build_engine`` hands the engine)."""
    return _Spool(*args, encode=encode_pending, decode=decode_pending, **kwargs)



def _events(n: int, run: str) -> list[Pending]:
    out = []
    for i in range(n):
        event, items = event_from_args(
            "order.completed",
            {"order_id": f"bs_{run}_{i}", "org_name": "org_1", "user_id": "u", "email": "a@b.co", "total_cents": i},
        )
        out.append(Pending(event=event, items=items))
    return out


def _one(url: str, mode: str, fsync: str, n: int, tag: str) -> tuple[float, float]:
    sink = JetStreamSink(url)
    spool = None
    if mode != "memory":
        spool = Spool(Path(tempfile.mkdtemp(prefix="bench-spool-")), SpoolKey("bench", (sink.spool_identity(),)),
                      mode=mode, fsync=fsync)  # type: ignore[arg-type]  # fmt: skip
    engine = DeliveryEngine([sink], spool=spool, queue_size=max(n, 10_000), exit_hook=False)
    events = _events(n, tag)
    warm = _events(1, tag + "w")[0]
    engine.submit(warm)
    engine.flush(30)
    t0 = time.perf_counter()
    for p in events:
        engine.submit(p)
    t1 = time.perf_counter()
    ok = engine.flush(120)
    t2 = time.perf_counter()
    engine.shutdown(5)
    assert ok, engine.stats()
    return (t1 - t0) / n * 1e6, n / (t2 - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    modes = [("memory", "none", args.events), ("spill", "none", args.events), ("wal", "none", args.events),
             ("wal", "grouped", args.events), ("wal", "always", min(args.events, 500))]  # fmt: skip
    with NatsServer() as server:
        results: dict[str, tuple[float, float]] = {}  # sums over runs (means printed)
        for run in range(args.runs):
            for mode, fsync, n in modes:
                name = mode if mode != "wal" else f"wal/{fsync}"
                us, rate = _one(server.url, mode, fsync, n, f"{run}{name}")
                prev = results.get(name)
                results[name] = (us, rate) if prev is None else (prev[0] + us, prev[1] + rate)
        base = results["memory"][1] / args.runs
        print(f"{'mode':<14}{'submit µs/event':>18}{'events/s':>12}{'vs memory':>11}")
        for name, (us, rate) in results.items():
            us, rate = us / args.runs, rate / args.runs
            print(f"{name:<14}{us:>18.2f}{rate:>12.0f}{rate / base:>10.2f}x")


if __name__ == "__main__":
    main()
