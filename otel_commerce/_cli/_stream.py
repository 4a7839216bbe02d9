"""Reading the COMMERCE stream for ``trace --nats-url`` and ``tail`` (ordered, ephemeral consumers)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import nats
import orjson
from nats import errors as nats_errors
from nats.js import errors as js_errors
from nats.js.api import ConsumerConfig, DeliverPolicy

from .._log import cause_of
from .._model import STREAM_NAME
from .._redact import redact_url
from ._common import fail

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.aio.msg import Msg

__all__ = ["EventFilter", "connect", "envelope_of", "scan_stream", "tail_stream"]


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Client-side filters on envelopes (types are OR-ed)."""

    types: tuple[str, ...] = ()
    organization_id: str | None = None
    trace_id: str | None = None
    since: datetime | None = field(default=None, compare=False)

    @property
    def subject(self) -> str:
        """The consumer's filter subject: one type's subject, else ``commerce.>``."""
        return f"commerce.{self.types[0]}" if len(self.types) == 1 else "commerce.>"

    def matches(self, envelope: dict[str, Any]) -> bool:
        if self.types and envelope.get("type") not in self.types:
            return False
        if self.organization_id and envelope.get("organization_id") != self.organization_id:
            return False
        return not (self.trace_id and str(envelope.get("trace_id", "")).lower() != self.trace_id)


def envelope_of(msg: Msg) -> dict[str, Any] | None:
    """The message's envelope (a JSON object), None when the payload is something else."""
    try:
        obj = orjson.loads(msg.data)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


async def connect(url: str, *, timeout_seconds: float = 5.0) -> NATS:
    """Connect or exit with a clear message (no endless reconnect loop for a debugging tool)."""

    seen: list[BaseException] = []

    async def quiet(exc: Exception) -> None:  # the failure is reported once, below (with the real cause)
        seen.append(exc)

    try:
        # nats-py treats max_reconnect_attempts=0 as "forever" for the first connect: 1 try + 1 retry.
        return await nats.connect(
            url,
            connect_timeout=timeout_seconds,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.2,
            allow_reconnect=False,
            error_cb=quiet,
        )
    except (nats_errors.Error, OSError, asyncio.TimeoutError) as exc:
        fail(f"cannot connect to NATS at {redact_url(url)}: {cause_of(exc, seen)}", 2)


def _consumer_config(flt: EventFilter, *, from_start: bool) -> ConsumerConfig:
    if flt.since is not None:
        return ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=flt.since)
    policy = DeliverPolicy.ALL if from_start else DeliverPolicy.NEW
    return ConsumerConfig(deliver_policy=policy)


async def _last_seq(nc: NATS) -> int:
    js = nc.jetstream()
    try:
        info = await js.stream_info(STREAM_NAME)
    except js_errors.NotFoundError:
        fail(f"stream {STREAM_NAME} does not exist (run `otel-commerce bootstrap`)", 2)
    return int(info.state.last_seq or 0)


async def read_stored(js: Any, flt: EventFilter, first: int, last: int) -> list[dict[str, Any]]:
    """The matching envelopes stored at stream sequences ``first`` .. ``last`` (inclusive), in order, read one by
    one (``STREAM.MSG.GET``; deleted sequences skipped): ``scan_stream`` fills what its consumer skipped with it."""
    out: list[dict[str, Any]] = []
    for seq in range(first, last + 1):
        try:
            raw = await js.get_msg(STREAM_NAME, seq)
        except js_errors.NotFoundError:
            continue
        envelope = envelope_of(raw)
        if envelope is not None and flt.matches(envelope):
            out.append(envelope)
    return out


async def scan_stream(nc: NATS, flt: EventFilter, *, timeout_seconds: float = 30.0) -> list[dict[str, Any]]:
    """Every matching envelope stored in the stream now, in stream order (stops at the consumer's end).

    The ordered consumer's messages carry their stream sequence: a sequence it skipped (nats-py's ordered
    consumer was seen to lose one under load, once in a few hundred runs) is read directly
    (:func:`read_stored`), and so is anything left between its last message and the stream's last sequence
    when the scan started."""
    last = await _last_seq(nc)
    if last == 0:
        return []
    found: list[dict[str, Any]] = []
    js = nc.jetstream()
    # the next sequence the consumer should deliver, when it reads the whole stream (None: not known yet, with
    # --since; or a one-type filter, whose sequences are not consecutive: no gap check)
    whole = flt.subject == "commerce.>"
    expected: int | None = None
    if whole and flt.since is None:
        expected = int((await js.stream_info(STREAM_NAME)).state.first_seq or 1)
    sub = await js.subscribe(
        flt.subject, stream=STREAM_NAME, ordered_consumer=True, config=_consumer_config(flt, from_start=True)
    )
    deadline = time.monotonic() + timeout_seconds
    try:
        info = await sub.consumer_info()
        if not info.num_pending and not (info.delivered and info.delivered.consumer_seq):
            return found  # nothing at all for this subject / start time
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                fail(f"reading the stream took longer than {timeout_seconds:g}s (narrow it with --since)", 3)
            try:
                msg = await sub.next_msg(timeout=min(remaining, 5.0))
            except nats_errors.TimeoutError:
                break
            seq = msg.metadata.sequence.stream
            if expected is not None and seq > expected:  # skipped: read them as stored
                found += await read_stored(js, flt, expected, seq - 1)
            if expected is None or seq >= expected:
                expected = seq + 1 if whole else None
                envelope = envelope_of(msg)
                if envelope is not None and flt.matches(envelope):
                    found.append(envelope)
            if msg.metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    if expected is not None and expected <= last:  # the consumer stopped short of the scan's end
        found += await read_stored(js, flt, expected, last)
    return found


async def tail_stream(
    nc: NATS,
    flt: EventFilter,
    on_event: Callable[[dict[str, Any]], Awaitable[None] | None],
    *,
    limit: int | None = None,
    duration_seconds: float | None = None,
) -> int:
    """Call ``on_event`` for each matching new event until ``limit`` events or ``duration_seconds``."""
    await _last_seq(nc)  # fails clearly when the stream is missing
    js = nc.jetstream()
    sub = await js.subscribe(
        flt.subject, stream=STREAM_NAME, ordered_consumer=True, config=_consumer_config(flt, from_start=False)
    )
    deadline = None if duration_seconds is None else time.monotonic() + duration_seconds
    count = 0
    try:
        while limit is None or count < limit:
            wait = 1.0 if deadline is None else deadline - time.monotonic()
            if wait <= 0:
                break
            try:
                msg = await sub.next_msg(timeout=min(wait, 1.0))
            except nats_errors.TimeoutError:
                continue
            envelope = envelope_of(msg)
            if envelope is None or not flt.matches(envelope):
                continue
            count += 1
            result = on_event(envelope)
            if result is not None:
                await result
    finally:
        await sub.unsubscribe()
    return count
