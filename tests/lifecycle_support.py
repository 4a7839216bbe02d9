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

from otel_commerce.subjects import STREAM_NAME

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
    """The environment of a child: no inherited OTEL_COMMERCE_* / OTEL_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PUBSUB_URL", "ANALYTICS_ENDPOINT"))}
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


async def _stream_ids(url: str) -> collections.Counter[str]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        total = (await js.stream_info(STREAM_NAME)).state.messages
        sub = await js.subscribe("commerce.>", ordered_consumer=True)
        ids = [(await sub.next_msg(timeout=5)).headers["Nats-Msg-Id"] for _ in range(total)]
        await sub.unsubscribe()
        return collections.Counter(ids)
    finally:
        await nc.close()


def stream_ids(url: str) -> collections.Counter[str]:
    """How often each ``Nats-Msg-Id`` is in COMMERCE."""
    return asyncio.run(_stream_ids(url))
