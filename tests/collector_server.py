"""Run the collector app under a real uvicorn server in a background thread (for tests and demos).

with CollectorServer(create_app(store)) as server:
    httpx.post(server.url + "/event", json={...})
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import uvicorn

from otel_commerce._natsserver import free_port
from otel_commerce.collector import EventStore


class CollectorServer:
    """A uvicorn server on 127.0.0.1:<free port>; ``start()`` returns once ``/health`` answers 200."""

    def __init__(self, app: Any, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"collector-{self.port}", daemon=True)

    def start(self, *, timeout_seconds: float = 10.0) -> CollectorServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_seconds
        last: Exception | None = None
        while time.monotonic() < deadline:
            if not self._thread.is_alive():
                raise RuntimeError(f"collector server on port {self.port} exited during start-up")
            if self._server.started:
                try:
                    if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                        return self
                except httpx.HTTPError as exc:
                    last = exc
            time.sleep(0.01)  # polling interval of a deadline-bounded readiness check
        self.stop()
        raise RuntimeError(f"collector did not answer /health within {timeout_seconds}s: {last}")

    def stop(self, *, timeout_seconds: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_seconds)

    def __enter__(self) -> CollectorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running_collector(
    db_path: str | os.PathLike[str], **app_options: Any
) -> Iterator[tuple[CollectorServer, EventStore]]:
    """A collector (``create_app(**app_options)``) over a fresh store at ``db_path``, served on a free port."""
    from otel_commerce.collector import create_app

    store = EventStore(db_path)
    try:
        with CollectorServer(create_app(store, **app_options)) as server:
            yield server, store
    finally:
        store.close()
