"""The demo's embedded services: a nats-server (``NatsServer``) and the collector served in-process."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from ._natsserver import free_port

if TYPE_CHECKING:
    from ..collector import EventStore

__all__ = ["EmbeddedCollector", "ThreadedServer", "reset_db"]


def reset_db(path: Path) -> None:
    """Remove a previous demo store (and its WAL files) so each run starts empty."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


class ThreadedServer:
    """An ASGI app under uvicorn in a daemon thread on ``127.0.0.1:<free port>`` (demo and tests)."""

    def __init__(self, app: Any, *, port: int | None = None, name: str = "otel-commerce-collector") -> None:
        import uvicorn

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on", access_log=False
        )
        self._server: Any = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"{name}-{self.port}", daemon=True)

    def start(self, *, timeout_seconds: float = 10.0) -> ThreadedServer:
        """Start serving; returns once ``/health`` answers 200 (raises ``RuntimeError`` after the timeout)."""
        self._thread.start()
        deadline = time.monotonic() + timeout_seconds
        last: Exception | None = None
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if not self._thread.is_alive():
                    raise RuntimeError(f"the collector on port {self.port} exited during start-up")
                if self._server.started:
                    try:
                        if client.get(self.url + "/health").status_code == 200:
                            return self
                    except httpx.HTTPError as exc:
                        last = exc
                time.sleep(0.02)  # polling interval of the deadline-bounded readiness check
        self.stop()
        raise RuntimeError(f"the collector did not answer /health within {timeout_seconds:g}s: {last}")

    def stop(self, *, timeout_seconds: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_seconds)

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmbeddedCollector(ThreadedServer):
    """The collector app over ``store``, served in-process."""

    def __init__(self, store: EventStore) -> None:
        from ..collector import create_app

        super().__init__(create_app(store))
