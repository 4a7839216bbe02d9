"""A real, controllable HTTP server that behaves like the Hanzo analytics collector (facts §4).

Routes: ``POST /event`` (one JSON object, ``event`` required) → ``200 {"status":"ok"}``;
``POST /events`` (``{"events":[...]}``) → ``200 {"status":"ok","count":N}``; ``GET /health``; the
same under ``/v1/analytics``. ``400 {"error":...}`` on bad JSON or a missing ``event``.

Fault injection (thread-safe, change it at any time):
- ``fail_next(n, status=500, retry_after=None)``: the next ``n`` POSTs answer ``status``;
- ``always_status = 500``: every POST answers that status until reset to None;
- ``delay_seconds``: every POST waits that long before answering;
- ``batch_route = False``: ``/events`` answers 404 (an old collector);
- an event whose ``properties.bad`` is true makes its request (batch or single) a 400;
- an event whose ``properties.crash`` is true makes its request a 500 (a poison event for the server);
- ``throttle(seconds, retry_after)``: every POST answers 429 with that ``Retry-After`` for ``seconds``;
- ``reject_all = 400``: every POST answers that status (a proxy refusing everything).

``batch_sizes`` records the number of events of every ``/events`` request.

Accepted events are recorded in ``events``; ``wait_for(n, timeout)`` waits until ``n`` have arrived.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeCollector"]

_PREFIX = "/v1/analytics"


class FakeCollector:
    """A threaded HTTP server on 127.0.0.1 with a free port; use as a context manager or start()/stop()."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.requests: list[tuple[str, int]] = []  # (path, status)
        self.headers_seen: list[dict[str, str]] = []
        self.always_status: int | None = None
        self.delay_seconds = 0.0
        #: when set: every POST waits (up to 30 s) until the test sets this event (holds a send in flight)
        self.gate: threading.Event | None = None
        self.batch_route = True
        self.reject_all: int | None = None
        self.batch_sizes: list[int] = []
        self._throttle_until = 0.0
        self._throttle_retry_after = ""
        self._fail_left = 0
        self._fail_status = 500
        self._fail_retry_after: str | None = None
        self._cond = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeCollector:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-collector", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeCollector:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail_next(self, n: int, status: int = 500, retry_after: str | None = None) -> None:
        with self._cond:
            self._fail_left = n
            self._fail_status = status
            self._fail_retry_after = retry_after

    def throttle(self, seconds: float, retry_after: str) -> None:
        """Answer every POST with ``429`` and ``Retry-After: retry_after`` for the next ``seconds``."""
        with self._cond:
            self._throttle_until = time.monotonic() + seconds
            self._throttle_retry_after = retry_after

    def wait_for(self, n: int, timeout: float = 10.0) -> bool:
        """Wait until at least ``n`` events were accepted."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.events) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def event_ids(self) -> list[str]:
        with self._cond:
            return [str((e.get("properties") or {}).get("event_id")) for e in self.events]

    def statuses(self, path: str | None = None) -> list[int]:
        with self._cond:
            return [s for p, s in self.requests if path is None or p == path]

    # ------------------------------------------------------------------ handling
    def _decide(self, path: str, body: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
        """(status, JSON answer, extra headers) for one POST; records accepted events."""
        with self._cond:
            if path == "/events" and isinstance(body, dict) and isinstance(body.get("events"), list):
                self.batch_sizes.append(len(body["events"]))
            if self._fail_left > 0:
                self._fail_left -= 1
                headers = {"Retry-After": self._fail_retry_after} if self._fail_retry_after else {}
                return self._fail_status, {"error": "injected failure"}, headers
            if self.always_status is not None:
                return self.always_status, {"error": "injected failure"}, {}
            if time.monotonic() < self._throttle_until:
                return 429, {"error": "slow down"}, {"Retry-After": self._throttle_retry_after}
        if self.reject_all is not None:
            return self.reject_all, {"error": "refused by policy"}, {}
        if path == "/events":
            if not self.batch_route:
                return 404, {"error": "not found"}, {}
            events = body.get("events") if isinstance(body, dict) else None
            if not isinstance(events, list):
                return 400, {"error": "events must be a list"}, {}
        else:
            events = [body]
        for e in events:
            if not isinstance(e, dict) or not e.get("event"):
                return 400, {"error": "missing event"}, {}
            if (e.get("properties") or {}).get("bad"):
                return 400, {"error": f"bad event {e.get('event')}"}, {}
            if (e.get("properties") or {}).get("crash"):
                return 500, {"error": "internal error"}, {}
        with self._cond:
            self.events.extend(events)
            self._cond.notify_all()
        answer: dict[str, Any] = {"status": "ok"}
        if path == "/events":
            answer["count"] = len(events)
        return 200, answer, {}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body are two writes: without NODELAY, Nagle + delayed ACK add 40 ms each.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self, status: int, obj: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                path = self.path.removeprefix(_PREFIX)
                if path == "/health":
                    self._answer(200, {"status": "ok", "service": "fake-collector"})
                else:
                    self._answer(404, {"error": "not found"})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.removeprefix(_PREFIX)
                with collector._cond:
                    collector.headers_seen.append(dict(self.headers.items()))
                if collector.gate is not None:
                    collector.gate.wait(30)
                if collector.delay_seconds:
                    time.sleep(collector.delay_seconds)  # simulates a slow server (not test synchronisation)
                if path not in ("/event", "/events"):
                    status, obj, headers = 404, {"error": "not found"}, {}
                else:
                    try:
                        if self.headers.get("Content-Encoding") == "gzip":
                            raw = gzip.decompress(raw)
                        body = json.loads(raw)
                    except (ValueError, OSError):
                        status, obj, headers = 400, {"error": "invalid JSON"}, {}
                    else:
                        status, obj, headers = collector._decide(path, body)
                with collector._cond:
                    collector.requests.append((path, status))
                self._answer(status, obj, headers)

        return Handler
