"""Throughput of the delivery engine against the raw client libraries, in one run on this machine.

    python benchmarks/bench_delivery.py [--events 20000] [--posts 2000] [--runs 3]

Starts its own nats-server (JetStream, temp store) and a local threaded HTTP server, then measures
(median of ``--runs``):

1. JetStream: ``DeliveryEngine([JetStreamSink])`` from the first ``submit`` to ``flush`` returning
   (mapping + encoding on the delivery thread included) vs raw nats-py ``js.publish_async`` of the
   same number of prepared messages with ``Nats-Msg-Id`` (encoding excluded), awaited to completion.
2. Collector: ``Client`` (batched ``POST /events``) from the first emit to ``flush`` vs one
   ``POST /event`` per event with ``httpx.Client`` (the Go client's way).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import nats

from otel_commerce._cli._natsserver import NatsServer
from otel_commerce._compat import Client
from otel_commerce._delivery import DeliveryEngine
from otel_commerce._model import OrderItem, Pending, event_from_args
from otel_commerce._sinks import JetStreamSink
from otel_commerce.subjects import STREAM_NAME


# --------------------------------------------------------------------------- a minimal collector
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    received = 0
    lock = threading.Lock()

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        n = len(body["events"]) if self.path == "/events" else 1
        with _Handler.lock:
            _Handler.received += n
        data = json.dumps({"status": "ok", "count": n} if self.path == "/events" else {"status": "ok"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _start_http() -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    host, port = server.server_address[:2]
    return server, f"http://{host!s}:{port}"


# --------------------------------------------------------------------------- workloads
_ITEMS = [OrderItem("prod_1", "T-shirt", "SKU-1", 2, 19.99), OrderItem("prod_2", "Mug", "SKU-2", 1, 9.5)]


def _pendings(n: int, tag: str) -> list[Pending]:
    out = []
    for i in range(n):
        args = {
            "order_id": f"ord_{tag}_{i}",
            "org_name": "org_bench",
            "user_id": f"usr_{i % 997}",
            "email": "buyer@example.com",
            "total_cents": 4948,
            "items": _ITEMS,
        }
        event, items = event_from_args("order.completed", args)
        out.append(Pending(event=event, items=items))
    return out


async def _reset_stream(url: str) -> None:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().delete_stream(STREAM_NAME)
    except Exception:
        pass
    finally:
        await nc.close()


def bench_engine(url: str, n: int, run: int) -> float:
    asyncio.run(_reset_stream(url))
    pendings = _pendings(n, f"engine{run}")
    engine = DeliveryEngine(
        [JetStreamSink(url, window=2048)], batch_size=2048, linger_seconds=0.0, queue_size=max(n, 10_000)
    )
    warm = _pendings(1, f"warm{run}")[0]  # connect + bootstrap outside the timing
    engine.submit(warm)
    assert engine.flush(30)
    start = time.perf_counter()
    for p in pendings:
        engine.submit(p)
    assert engine.flush(120), engine.stats()
    elapsed = time.perf_counter() - start
    assert engine.stats()["exported"] == n + 1, engine.stats()
    engine.shutdown(10)
    return n / elapsed


def bench_publish_async(url: str, n: int, run: int) -> float:
    asyncio.run(_reset_stream(url))
    pendings = _pendings(n, f"raw{run}")
    for p in pendings:
        assert p.event is not None
    prepared = [(p.event.subject, p.event.to_json(), {"Nats-Msg-Id": p.event.event_id}) for p in pendings if p.event]

    async def run_it() -> float:
        from otel_commerce._sinks import bootstrap

        nc = await nats.connect(url)
        js = nc.jetstream(publish_async_max_pending=4000)
        await bootstrap(js)
        start = time.perf_counter()
        for subject, payload, headers in prepared:
            await js.publish_async(subject, payload, headers=headers)
        await asyncio.wait_for(js.publish_async_completed(), 120)
        elapsed = time.perf_counter() - start
        info = await js.stream_info(STREAM_NAME)
        assert info.state.messages == n, info.state
        await nc.close()
        return n / elapsed

    return asyncio.run(run_it())


def bench_sink(url: str, n: int, run: int) -> float:
    """The pipelined publisher alone (``JetStreamSink.send``) on prepared messages: like for like."""
    from otel_commerce._model import apply_marketing

    asyncio.run(_reset_stream(url))
    sink = JetStreamSink(url, window=2048)
    prepared = []
    for p in _pendings(n, f"sink{run}"):
        assert p.event is not None
        apply_marketing(p.event, p.items)
        item = sink.prepare(p)
        assert item is not None
        prepared.append(item[0])

    async def run_it() -> float:
        await sink.start()
        assert await sink.wait_ready(10)
        start = time.perf_counter()
        outcomes = await sink.send(prepared)
        elapsed = time.perf_counter() - start
        assert all(o is None for o in outcomes)
        await sink.close()
        return n / elapsed

    return asyncio.run(run_it())


def bench_client(url: str, n: int, run: int) -> float:
    before = _Handler.received
    client = Client(url, batch_size=500, linger_seconds=0.01, queue_size=max(n, 10_000))
    client.emit_referral_claimed("org", "warm", f"warm{run}", "CODE")
    assert client.flush(30)
    start = time.perf_counter()
    for i in range(n):
        client.emit_referral_claimed("org_bench", "usr_ref", f"usr_{run}_{i}", "CODE")
    assert client.flush(120)
    elapsed = time.perf_counter() - start
    client.close(10)
    assert _Handler.received - before == n + 1
    return n / elapsed


def bench_one_post_per_event(url: str, n: int, run: int) -> float:
    from otel_commerce._model import collector_from_args

    payloads = [
        collector_from_args(
            "referral.claimed",
            {"org_id": "org_bench", "referrer_id": "usr_ref", "referee_id": f"u{run}_{i}", "referral_code": "C"},
        )[0]
        for i in range(n)
    ]
    with httpx.Client(timeout=5.0) as http:
        http.post(url + "/event", json=payloads[0])
        start = time.perf_counter()
        for p in payloads:
            r = http.post(url + "/event", json=p)
            assert r.status_code == 200
        return n / (time.perf_counter() - start)


def _median(fn: Callable[[str, int, int], float], url: str, n: int, runs: int) -> float:
    return statistics.median(fn(url, n, r) for r in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run (500 events, 100 posts, 1 run)")
    parser.add_argument("--events", type=int, default=None, help="events per run (default 20000; quick 500)")
    parser.add_argument("--posts", type=int, default=None, help="events for the one-POST-per-event baseline "
                        "(default 2000; quick 100)")  # fmt: skip
    parser.add_argument("--runs", type=int, default=None, help="runs (default 3; quick 1)")
    args = parser.parse_args()
    args.events = args.events or (500 if args.quick else 20_000)
    args.posts = args.posts or (100 if args.quick else 2_000)
    args.runs = args.runs or (1 if args.quick else 3)

    http_server, http_url = _start_http()
    with NatsServer() as srv:
        engine = _median(bench_engine, srv.url, args.events, args.runs)
        raw = _median(bench_publish_async, srv.url, args.events, args.runs)
        sink = _median(bench_sink, srv.url, args.events, args.runs)
    batched = _median(bench_client, http_url, args.events, args.runs)
    single = _median(bench_one_post_per_event, http_url, args.posts, args.runs)
    http_server.shutdown()

    print(f"events per run: {args.events} (one-POST baseline: {args.posts}), median of {args.runs} runs")
    print(f"JetStream  engine (map+encode+pipelined publish)  {engine:>10,.0f} events/s")
    print(f"JetStream  nats-py publish_async (prepared)       {raw:>10,.0f} events/s")
    print(f"JetStream  JetStreamSink.send alone (prepared)    {sink:>10,.0f} events/s")
    print(f"  ratio sink / publish_async (like for like)      {sink / raw:>10.2f}x")
    print(f"  ratio engine / publish_async                    {engine / raw:>10.2f}x")
    print(f"Collector  Client batched POST /events            {batched:>10,.0f} events/s")
    print(f"Collector  httpx one POST /event per event        {single:>10,.0f} events/s")
    print(f"  ratio batched / one-per-event                   {batched / single:>10.2f}x")


if __name__ == "__main__":
    main()
