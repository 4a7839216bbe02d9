"""Web servers SIGTERMed with requests in flight: every event whose request answered 200 is delivered.

The app records its event *after* a pause, so the events are recorded during the server's graceful drain,
after the signal arrived: a flush at signal time (instead of after the drain) loses them.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fake_collector import FakeCollector
from lifecycle_support import PYTHON, child_env, free_port, stream_ids, write_script
from polling import poll

from otel_commerce._cli._natsserver import NatsServer


@pytest.fixture
def collector() -> Iterator[FakeCollector]:
    with FakeCollector() as fc:
        yield fc


_ASGI_APP = """
import asyncio
import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

import otel_commerce
from lifecycle_record import record

otel_commerce.configure()
MARKS = Path(os.environ["APP_MARKS"])


async def order(request):
    i = request.path_params["i"]
    (MARKS / f"{i}-{os.getpid()}").touch()  # the request has arrived
    await asyncio.sleep(0.4)
    return JSONResponse({"event_id": record(i)})


async def health(request):
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/order/{i}", order, methods=["POST"]), Route("/health", health)])
"""

_WSGI_APP = """
import os
import time
from pathlib import Path

from flask import Flask, jsonify

import otel_commerce
from lifecycle_record import record

otel_commerce.configure()
MARKS = Path(os.environ["APP_MARKS"])
app = Flask(__name__)


@app.post("/order/<i>")
def order(i):
    (MARKS / f"{i}-{os.getpid()}").touch()
    time.sleep(0.4)
    return jsonify(event_id=record(i))


@app.get("/health")
def health():
    return "ok"
"""


def _serve_and_terminate(
    tmp_path: Path, cmd: list[str], env: dict[str, str], port: int, n: int
) -> tuple[list[str], int, str]:
    """Start the server, send ``n`` requests, SIGTERM it once all arrived; the 200-answered event ids."""
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {**env, "APP_MARKS": str(marks)}
    log = tmp_path / "server.log"
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:

        def healthy() -> bool:
            try:
                return httpx.get(url + "/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        assert poll(healthy, 30), log.read_text()[-3000:]
        answers: list[httpx.Response | BaseException] = []

        def send(i: int) -> None:
            try:
                answers.append(httpx.post(f"{url}/order/{i}", timeout=20))
            except BaseException as exc:
                answers.append(exc)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        assert poll(lambda: len(list(marks.iterdir())) >= n, 20), log.read_text()[-3000:]
        proc.send_signal(signal.SIGTERM)  # every request is in flight
        for t in threads:
            t.join(30)
        rc = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    ok = [a.json()["event_id"] for a in answers if isinstance(a, httpx.Response) and a.status_code == 200]
    return ok, rc, log.read_text()


def _uvicorn(port: int, *extra: str) -> list[str]:
    return [PYTHON, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port), *extra]


def _gunicorn(port: int, worker: str) -> list[str]:
    return [
        PYTHON,
        "-m",
        "gunicorn",
        "-b",
        f"127.0.0.1:{port}",
        "-w",
        "2",
        "-k",
        worker,
        "--graceful-timeout",
        "20",
        "app:app",
    ]


_SERVERS = {
    "uvicorn": (_ASGI_APP, lambda port: _uvicorn(port), -signal.SIGTERM),
    "uvicorn-workers-2": (_ASGI_APP, lambda port: _uvicorn(port, "--workers", "2"), None),
    "gunicorn-sync": (_WSGI_APP, lambda port: _gunicorn(port, "sync"), 0),
    "gunicorn-uvicorn-worker": (_ASGI_APP, lambda port: _gunicorn(port, "uvicorn.workers.UvicornWorker"), 0),
}


@pytest.mark.parametrize("server", list(_SERVERS))
def test_sigterm_with_requests_in_flight_delivers_every_answered_event(
    tmp_path: Path, collector: FakeCollector, nats_server: NatsServer, server: str, uid: str
) -> None:
    if server.startswith("gunicorn"):
        pytest.importorskip("gunicorn")
    app, cmd, expected_rc = _SERVERS[server]
    write_script(tmp_path, "app.py", app)
    collector.delay_seconds = 0.5  # delivery is slower than the drain: a flush must really wait
    port = free_port()
    env = child_env(
        TEST_PREFIX=f"srv_{server}_{uid}",
        OTEL_COMMERCE_NATS_URL=nats_server.url,
        OTEL_COMMERCE_COLLECTOR_ENDPOINT=collector.url,
    )
    ids, rc, log = _serve_and_terminate(tmp_path, cmd(port), env, port, 6)
    assert len(ids) == 6, log[-3000:]
    if expected_rc is not None:
        assert rc == expected_rc, log[-3000:]
    delivered = set(collector.event_ids())
    assert set(ids) <= delivered, (f"{len(set(ids) - delivered)} of {len(ids)} lost", log[-3000:])
    in_stream = stream_ids(nats_server.url, env["TEST_PREFIX"])
    assert all(in_stream[i] == 1 for i in ids), log[-3000:]
