"""The collector path: ``otel_commerce.Client`` (batched by the delivery engine) against one POST per
event with httpx (the seed's design, like the Go client), to the same local HTTP server.

Run: ``python benchmarks/bench_collector.py`` (``--quick`` for a smoke run).

Method: a minimal collector stand-in (``benchmarks/_count_server.py``: uvicorn, a raw ASGI app that
parses each body and counts events, stores nothing) runs in its own process on 127.0.0.1. Ours:
``Client(endpoint).emit_order_completed(order)`` for N orders (2 items each), then ``flush()``; the clock
runs from the first emit until the engine holds a 2xx for every event (batches of up to 512 events per
``POST /events``). Baseline: the same N payloads (the exact JSON our Client sends, encoded before the
clock starts), one ``POST /event`` each, sequential, on one keep-alive ``httpx.Client`` opened
beforehand; every status is checked. The server's event count is checked after every run. Runs
alternate; medians are reported.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
from _benchutil import clean_env


def make_orders(prefix: str, n: int) -> list[object]:
    from otel_commerce import Order, OrderItem

    items = [
        OrderItem(product_id="prod_1", product_name="Blue mug", sku="MUG-B", quantity=2, price=14.5),
        OrderItem(product_id="prod_2", product_name="Tea, 250 g", sku="TEA-250", quantity=1, price=100.99),
    ]
    return [
        Order(
            id=f"{prefix}_{i:07d}",
            user_id="usr_42",
            email="Buyer@Example.com",
            total=129.99,
            currency="USD",
            items=items,
            status="completed",
            org_id="org_acme",
        )
        for i in range(n)
    ]


def raw_payloads(orders: list[object]) -> list[bytes]:
    """What ``Client.emit_order_completed`` sends for each order (its ``_emit`` path), as JSON bytes."""
    from otel_commerce._model import CATALOG, collector_from_args, event_id_for

    spec = CATALOG["order.completed"]
    out = []
    for order in orders:
        payload, entity_id, org = collector_from_args("order.completed", {"order": order, "idempotency_key": None})
        payload["properties"]["event_id"] = event_id_for("order.completed", org, entity_id, once=spec.once)
        out.append(orjson.dumps(payload))
    return out


def server_count(base: str) -> int:
    return int(httpx.get(base + "/count", timeout=5.0).json()["events"])


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    from otel_commerce._cli._natsserver import free_port

    port = free_port()
    script = Path(__file__).with_name("_count_server.py")
    proc = subprocess.Popen([sys.executable, str(script), str(port)])
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline:
        try:
            server_count(base)
            return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the count server did not start")


def ours(base: str, orders: list[object]) -> float:
    from otel_commerce import Client

    with Client(base) as client:
        client.emit_order_completed(make_orders("warm", 1)[0])  # type: ignore[arg-type]
        client.flush(30.0)  # warm: the delivery thread and its connection exist
        t0 = time.perf_counter()
        for order in orders:
            client.emit_order_completed(order)  # type: ignore[arg-type]
        if not client.flush(120.0):
            raise SystemExit(f"Client.flush failed: {client.stats()}")
        return time.perf_counter() - t0


def raw(base: str, payloads: list[bytes]) -> float:
    with httpx.Client(timeout=5.0, headers={"Content-Type": "application/json"}) as http:
        http.post(base + "/event", content=payloads[0]).raise_for_status()  # warm: the connection is open
        t0 = time.perf_counter()
        for body in payloads[1:]:
            response = http.post(base + "/event", content=body)
            if response.status_code != 200:
                raise SystemExit(f"POST /event answered {response.status_code}")
        return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run (500 events, 1 run)")
    parser.add_argument("--n", type=int, default=None, help="events per run (default 5000)")
    parser.add_argument("--runs", type=int, default=None, help="runs per side (default 3)")
    args = parser.parse_args(argv)
    n = args.n or (500 if args.quick else 5000)
    runs = args.runs or (1 if args.quick else 3)
    clean_env()
    print(f"bench_collector: python {sys.version.split()[0]}, httpx {httpx.__version__}")
    print("  Method:" + __doc__.split("Method:")[1].replace("\n", "\n  "))
    t_start = time.monotonic()
    proc, base = start_server()
    try:
        ours_rates, raw_rates = [], []
        for run in range(runs):
            orders = make_orders(f"o{run}", n)
            before = server_count(base)
            secs = ours(base, orders)
            got = server_count(base) - before
            if got != n + 1:  # + the warm-up event
                raise SystemExit(f"ours: the server counted {got} events, expected {n + 1}")
            ours_rates.append(n / secs)
            payloads = raw_payloads(make_orders(f"r{run}", n + 1))
            before = server_count(base)
            secs = raw(base, payloads)
            got = server_count(base) - before
            if got != n + 1:
                raise SystemExit(f"raw: the server counted {got} events, expected {n + 1}")
            raw_rates.append(n / secs)
            print(f"  run {run + 1}: ours {ours_rates[-1]:,.0f} events/s, httpx POST per event {raw_rates[-1]:,.0f}/s")
        o, r = statistics.median(ours_rates), statistics.median(raw_rates)
        print(
            f"\ncollector, {n:,} events, median of {runs}: Client (batched) {o:,.0f} events/s, "
            f"httpx one POST per event {r:,.0f} events/s; ratio {o / r:.1f}x"
        )
    finally:
        proc.terminate()
        try:
            proc.wait(10.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10.0)
    print(f"\ndone in {time.monotonic() - t_start:.1f} s")


if __name__ == "__main__":
    main()
