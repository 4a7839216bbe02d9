"""``otel-commerce demo``: an embedded nats-server and collector, a small shop under OTel, and the proof.

It starts both services on free ports (the collector's SQLite store at a stable temp path, kept after
the run), sends the shop's traffic (each request a span, each handler decorated with
``@commerce_event``), then waits, with a deadline, until every event is in the COMMERCE stream and in
the collector with its request's trace id. Exit code 0 only when all arrived; 1 when some did not; 2
when the services cannot start (no nats-server, collector extra missing).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shlex
import signal
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from .._errors import ConfigurationError
from .._model import STREAM_NAME
from ._common import err_console, fail, out_console, print_json_line
from ._demo_shop import ORGANIZATION, Expected, Shop

if TYPE_CHECKING:
    from ..collector import EventStore

__all__ = ["default_db_path", "demo_command"]

Key = tuple[str, str]


def default_db_path() -> Path:
    """A fresh ``<temp dir>/otel-commerce-demo-<random>/events.db`` per run (kept afterwards for ``trace --db``)."""
    return Path(tempfile.mkdtemp(prefix="otel-commerce-demo-")) / "events.db"


@dataclass
class Arrivals:
    """What was found so far: envelopes (with stream sequence) in COMMERCE, stored events in the collector."""

    stream: dict[Key, tuple[dict[str, Any], int]] = field(default_factory=dict)
    collector: dict[Key, dict[str, Any]] = field(default_factory=dict)

    def in_stream(self, e: Expected) -> bool:
        found = self.stream.get((e.type, e.id))
        return found is not None and found[0].get("trace_id") == e.trace_id

    def in_collector(self, e: Expected) -> bool:
        found = self.collector.get((e.type, e.id))
        return found is not None and found.get("trace_id") == e.trace_id


async def _await_arrivals(
    nats_url: str, store: EventStore, expected: list[Expected], deadline: float, progress: Progress, tasks: list[Any]
) -> Arrivals:
    """Poll the stream (new sequences only) and the store until everything arrived or the deadline passes."""
    import nats
    from nats.js import errors as js_errors

    from ..collector import EventQuery

    wanted = {(e.type, e.id) for e in expected}
    found = Arrivals()
    nc = await nats.connect(nats_url, connect_timeout=5, allow_reconnect=False)
    try:
        js = nc.jetstream()
        next_seq = 1
        while True:
            try:
                last_seq = int((await js.stream_info(STREAM_NAME)).state.last_seq or 0)
            except js_errors.NotFoundError:
                last_seq = 0
            for seq in range(next_seq, last_seq + 1):
                msg = await js.get_msg(STREAM_NAME, seq)
                envelope = orjson.loads(msg.data or b"{}")
                key = (str(envelope.get("type")), str(envelope.get("id")))
                if key in wanted:
                    found.stream[key] = (envelope, seq)
            next_seq = max(next_seq, last_seq + 1)
            for stored in store.query(EventQuery(organization_id=ORGANIZATION, limit=10_000)):
                found.collector[(stored.type, stored.id)] = {"trace_id": stored.trace_id, "event_id": stored.event_id}
            progress.update(tasks[0], completed=sum(found.in_stream(e) for e in expected))
            progress.update(tasks[1], completed=sum(found.in_collector(e) for e in expected))
            done = all(found.in_stream(e) and found.in_collector(e) for e in expected)
            if done or time.monotonic() >= deadline:
                return found
            await asyncio.sleep(0.05)  # polling interval; the loop ends at the deadline
    finally:
        await nc.close()


def _table_console() -> Console:
    """stdout; wide enough for whole trace ids when it is not a terminal (pipes, CI logs)."""
    if out_console.is_terminal or os.environ.get("COLUMNS"):
        return out_console
    return Console(highlight=False, soft_wrap=True, width=200)


def _report_table(expected: list[Expected], found: Arrivals) -> Table:
    table = Table(title=f"{len(expected)} commerce events recorded by the demo shop", title_justify="left")
    table.add_column("request", overflow="fold")
    table.add_column("type", no_wrap=True)
    table.add_column("id", overflow="fold")
    table.add_column("trace_id", no_wrap=True, min_width=32)
    table.add_column("COMMERCE stream", no_wrap=True)
    table.add_column("collector", no_wrap=True)
    for e in expected:
        in_stream = found.stream.get((e.type, e.id))
        stream_cell = (
            f"[green]✓[/] seq {in_stream[1]}"
            if found.in_stream(e) and in_stream is not None
            else ("[red]✗ other trace[/]" if in_stream else "[red]✗ missing[/]")
        )
        collector_cell = (
            "[green]✓[/]"
            if found.in_collector(e)
            else ("[red]✗ other trace[/]" if (e.type, e.id) in found.collector else "[red]✗ missing[/]")
        )
        table.add_row(e.request, e.type, e.id, e.trace_id, stream_cell, collector_cell)
    return table


def _wait_for_stop() -> None:
    """Block until Ctrl-C or SIGTERM (``--keep-running``)."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def demo_command(
    events: Annotated[int, typer.Option("--events", "-n", metavar="N", min=1, max=1000, help="Orders the shop takes.")] = 3,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            metavar="PATH",
            help="Collector store to (re)create; kept after the demo.  [default: a new <temp dir>/otel-commerce-demo-*/events.db]",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option("--timeout", metavar="SECONDS", min=1.0, help="Seconds to wait for every event to arrive."),
    ] = 20.0,
    keep_running: Annotated[
        bool,
        typer.Option("--keep-running", help="Keep nats-server and the collector up after the report (Ctrl-C stops)."),
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Machine output: one JSON object per event, then a summary line."),
    ] = False,
) -> None:
    """Start an embedded nats-server and collector, run a small shop under OTel, show its events and trace ids."""
    from ..collector import require_collector_extra
    from ._natsserver import find_nats_server

    try:
        require_collector_extra("demo")
        binary = find_nats_server()
    except ConfigurationError as exc:
        fail(str(exc), 2)
    db_path = (db or default_db_path()).expanduser().resolve()
    run_id = secrets.token_hex(3)

    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=as_json,
    )
    with ExitStack() as stack:
        stack.enter_context(progress)
        nats_server, store, collector = _start_services(stack, progress, binary, db_path)
        import otel_commerce

        tracer_provider = _tracer_provider()
        otel_commerce.configure(
            nats_url=nats_server.url,
            collector_endpoint=collector.url,
            tracer_provider=tracer_provider,
            linger_seconds=0.01,
        )
        stack.callback(otel_commerce.shutdown, 5.0)

        shop = Shop(run_id, events, tracer_provider.get_tracer("otel-commerce-demo"))
        plan = shop.requests()
        traffic = progress.add_task("shop requests", total=len(plan))
        for request in plan:
            request()
            progress.advance(traffic)

        deadline = time.monotonic() + timeout
        expected = shop.expected
        tasks = [
            progress.add_task("in the COMMERCE stream", total=len(expected)),
            progress.add_task("in the collector", total=len(expected)),
        ]
        otel_commerce.flush(max(0.1, deadline - time.monotonic()))
        found = asyncio.run(_await_arrivals(nats_server.url, store, expected, deadline, progress, tasks))
        progress.stop()

        ok = all(found.in_stream(e) and found.in_collector(e) for e in expected)
        trace_id = shop.checkout_traces[0]
        trace_cmd = f"otel-commerce trace {trace_id} --db {shlex.quote(str(db_path))}"
        if as_json:
            _print_json(expected, found, ok=ok, db_path=db_path, trace_cmd=trace_cmd, trace_id=trace_id)
        else:
            _print_report(expected, found, ok=ok, db_path=db_path, trace_cmd=trace_cmd, timeout=timeout)
        if keep_running:
            _keep_running(nats_server.url, collector.url, db_path)
    if not ok:
        raise typer.Exit(1)


def _start_services(stack: ExitStack, progress: Progress, binary: str, db_path: Path) -> tuple[Any, Any, Any]:
    from ..collector import EventStore
    from ._demo_services import EmbeddedCollector, reset_db
    from ._natsserver import NatsServer

    task = progress.add_task("starting nats-server and the collector", total=2)
    try:
        nats_server = NatsServer(binary=binary).start()
        stack.callback(nats_server.close)
        progress.advance(task)
        reset_db(db_path)
        store = EventStore(db_path)
        stack.callback(store.close)
        collector = EmbeddedCollector(store).start()
        stack.callback(collector.stop)
        progress.advance(task)
    except (RuntimeError, OSError, ConfigurationError) as exc:
        progress.stop()
        fail(f"cannot start the demo's services: {exc}", 2)
    return nats_server, store, collector


def _tracer_provider() -> Any:
    """The global SDK TracerProvider (one is installed when there is none, e.g. outside opentelemetry-instrument)."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    provider = TracerProvider(resource=Resource.create({"service.name": "otel-commerce-demo"}))
    trace.set_tracer_provider(provider)
    return provider


def _print_report(
    expected: list[Expected], found: Arrivals, *, ok: bool, db_path: Path, trace_cmd: str, timeout: float
) -> None:
    console = _table_console()
    console.print(_report_table(expected, found))
    both = sum(found.in_stream(e) and found.in_collector(e) for e in expected)
    if ok:
        console.print(
            f"[green]✓[/] all {len(expected)} events arrived in the COMMERCE stream and in the collector, "
            "each with its request's trace id."
        )
    else:
        console.print(f"[red]✗[/] only {both} of {len(expected)} events arrived in both places within {timeout:g}s.")
    console.print(f"\nThe collector store is kept at {db_path}. Show the events of one checkout's trace:")
    console.print(f"\n  {trace_cmd}\n", markup=False)
    console.print(f"List them all: otel-commerce events --db {shlex.quote(str(db_path))}", markup=False)


def _print_json(
    expected: list[Expected], found: Arrivals, *, ok: bool, db_path: Path, trace_cmd: str, trace_id: str
) -> None:
    for e in expected:
        stream = found.stream.get((e.type, e.id))
        print_json_line(
            {
                "type": e.type,
                "id": e.id,
                "request": e.request,
                "trace_id": e.trace_id,
                "span_id": e.span_id,
                "event_id": stream[0].get("event_id") if stream else None,
                "stream_seq": stream[1] if stream else None,
                "in_stream": found.in_stream(e),
                "in_collector": found.in_collector(e),
            }
        )
    print_json_line(
        {
            "ok": ok,
            "events": len(expected),
            "arrived": sum(found.in_stream(e) and found.in_collector(e) for e in expected),
            "db": str(db_path),
            "trace_id": trace_id,
            "trace_command": trace_cmd,
        }
    )


def _keep_running(nats_url: str, collector_url: str, db_path: Path) -> None:
    err_console.print(
        "\nStill running (Ctrl-C stops). Point an app at them:\n"
        f"  export OTEL_COMMERCE_NATS_URL={nats_url}\n"
        f"  export OTEL_COMMERCE_COLLECTOR_ENDPOINT={collector_url}\n"
        f"Follow the stream: otel-commerce tail --nats-url {nats_url}\n"
        f"Query the store:   otel-commerce events --db {shlex.quote(str(db_path))}",
        markup=False,
    )
    _wait_for_stop()
