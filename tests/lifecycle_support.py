"""Helpers for the process-lifecycle tests: child scripts, event ids, a silent TCP port, stream reads."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import nats
from streams import stored

PYTHON = sys.executable

#: Imported by every child script: record one event whose referee id carries the test's prefix.
RECORD = """
import os
import otel_commerce

PREFIX = os.environ["TEST_PREFIX"]


def record(i):
    return otel_commerce.record_event(
        "referral.claimed",
        organization_id="org_life",
        data={"referrer_id": "r", "referee_id": f"{PREFIX}_{i}", "referral_code": "C"},
    )
"""


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child: no inherited OTEL_COMMERCE_* / OTEL_* settings (but the suite's spool
    isolation: off, in a temporary directory), plus ``extra``."""
    keep = ("OTEL_COMMERCE_SPOOL", "OTEL_COMMERCE_SPOOL_DIR")  # the suite's spool isolation (conftest)
    env = {
        k: v
        for k, v in os.environ.items()
        if k in keep or not k.startswith(("OTEL_", "PUBSUB_URL", "ANALYTICS_ENDPOINT"))
    }
    env.update(extra)
    return env


def write_script(tmp_path: Path, name: str, body: str) -> Path:
    (tmp_path / "lifecycle_record.py").write_text(RECORD)
    path = tmp_path / name
    path.write_text(body)
    return path


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections (kernel backlog) and never answers: an unreachable sink."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _stream_ids(url: str, prefix: str) -> collections.Counter[str]:
    nc = await nats.connect(url)
    try:
        msgs = await stored(nc.jetstream(), prefix)  # this test's messages only (the server is shared)
        return collections.Counter((m.headers or {}).get("Nats-Msg-Id", "") for m in msgs)
    finally:
        await nc.close()


def stream_ids(url: str, prefix: str) -> collections.Counter[str]:
    """How often each ``Nats-Msg-Id`` of the events whose data carry ``prefix`` is in COMMERCE."""
    return asyncio.run(_stream_ids(url, prefix))
