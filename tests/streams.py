"""Read a test's own messages from COMMERCE (never count over the whole stream: it is shared in a module)."""

from __future__ import annotations

import asyncio
import time

from nats.js import errors as js_errors
from nats.js.api import RawStreamMsg as Msg
from nats.js.client import JetStreamContext

from otel_commerce.subjects import STREAM_NAME


async def stored(js: JetStreamContext, uid: str, *, stream: str = STREAM_NAME) -> list[Msg]:
    """Messages of ``stream`` whose data or ``Nats-Msg-Id`` contains ``uid``, in stream order ([] if no stream)."""
    try:
        state = (await js.stream_info(stream)).state
    except js_errors.NotFoundError:
        return []
    needle = uid.encode()
    out: list[Msg] = []
    for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
        try:
            msg = await js.get_msg(stream, seq)
        except js_errors.NotFoundError:  # deleted or expired sequence
            continue
        if needle in (msg.data or b"") or uid in (msg.headers or {}).get("Nats-Msg-Id", ""):
            out.append(msg)
    return out


async def count(js: JetStreamContext, uid: str) -> int:
    """How many messages of COMMERCE belong to ``uid``."""
    return len(await stored(js, uid))


async def wait_stored(js: JetStreamContext, uid: str, n: int, timeout: float = 15.0) -> list[Msg]:
    """Poll until at least ``n`` messages of ``uid`` are stored (or the deadline); returns what is there."""
    deadline = time.monotonic() + timeout
    while True:
        msgs = await stored(js, uid)
        if len(msgs) >= n or time.monotonic() >= deadline:
            return msgs
        await asyncio.sleep(0.02)  # poll interval of a deadline-bounded wait
