"""The spool's cost, in one run: memory mode (spool off) vs ``spill`` vs ``wal`` (fsync none / grouped / always).

    python benchmarks/bench_spool.py [--events 20000] [--runs 3]

For each mode, on one nats-server (JetStream, temp store) and a fresh spool directory per run:

1. the caller's-thread cost of ``DeliveryEngine.submit`` per event (µs), events pre-built so event construction
   is excluded, two ways:
   - ``wall``: the submit loop's elapsed time — it includes the time the delivery thread holds the GIL meanwhile
     (it delivers while you submit), so it grows with everything that makes the loop longer;
   - ``cpu``: the caller thread's own CPU time (``time.thread_time``) — what the ``wal`` append itself costs;
2. delivery throughput: first ``submit`` to ``flush`` returning (events/s), and its ratio to memory mode in
   the same round (modes interleave round by round, so load drifts hit them alike).

Each timed loop starts after a ``gc.collect()`` (GC stays on): otherwise whichever mode runs first in a round
pays a full collection of the previous rounds' garbage (~2 µs per event in memory mode). Medians of
``--runs`` rounds; the load average is printed before and after. ``always`` is measured on a
smaller count (one ``msync`` per event: milliseconds on most disks).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
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


def _one(url: str, mode: str, fsync: str, n: int, tag: str, root: Path) -> tuple[float, float, float]:
    """(wall µs per submit, caller CPU µs per submit, delivered events/s) for one mode (spool under ``root``)."""
    sink = JetStreamSink(url)
    spool = None
    if mode != "memory":
        spool = Spool(Path(tempfile.mkdtemp(prefix="spool-", dir=root)), SpoolKey("bench", (sink.spool_identity(),)),
                      mode=mode, fsync=fsync)  # type: ignore[arg-type]  # fmt: skip
    engine = DeliveryEngine([sink], spool=spool, queue_size=max(n, 10_000), exit_hook=False)
    events = _events(n, tag)
    warm = _events(1, tag + "w")[0]
    engine.submit(warm)
    engine.flush(30)
    gc.collect()  # every mode starts its loop with the same collector state (see the module docstring)
    t0, c0 = time.perf_counter(), time.thread_time()
    for p in events:
        engine.submit(p)
    t1, c1 = time.perf_counter(), time.thread_time()
    ok = engine.flush(120)
    t2 = time.perf_counter()
    engine.shutdown(5)
    assert ok, engine.stats()
    return (t1 - t0) / n * 1e6, (c1 - c0) / n * 1e6, n / (t2 - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a smoke run (500 events, 1 run; --events / --runs win)")
    ap.add_argument("--events", type=int, default=None, help="events per mode and run (default 20000; quick 500)")
    ap.add_argument("--runs", type=int, default=None, help="rounds (default 3; quick 1)")
    args = ap.parse_args()
    args.events = args.events or (500 if args.quick else 20_000)
    args.runs = args.runs or (1 if args.quick else 3)
    modes = [("memory", "none", args.events), ("spill", "none", args.events), ("wal", "none", args.events),
             ("wal", "grouped", args.events), ("wal", "always", min(args.events, 500))]  # fmt: skip
    print("load average before: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    with NatsServer() as server, tempfile.TemporaryDirectory(prefix="bench-spool-") as root:  # removed at the end
        rows: dict[str, list[tuple[float, float, float, float]]] = {}  # per round: wall, cpu, rate, vs memory
        for run in range(args.runs):
            base = 0.0
            for mode, fsync, n in modes:
                name = mode if mode != "wal" else f"wal/{fsync}"
                wall, cpu, rate = _one(server.url, mode, fsync, n, f"{run}{name}{os.getpid()}", Path(root))
                base = base or rate
                rows.setdefault(name, []).append((wall, cpu, rate, rate / base))
    print("load average after:  " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"median of {args.runs} rounds, {args.events} events (wal/always: {min(args.events, 500)})")
    print(f"{'mode':<14}{'submit µs wall':>16}{'µs caller cpu':>15}{'events/s':>11}{'vs memory':>11}")
    for name, runs in rows.items():
        wall, cpu, rate, ratio = (statistics.median(r[i] for r in runs) for i in range(4))
        print(f"{name:<14}{wall:>16.2f}{cpu:>15.2f}{rate:>11.0f}{ratio:>10.2f}x")


if __name__ == "__main__":
    main()
