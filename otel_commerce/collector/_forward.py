"""Forward stored events to the COMMERCE stream, from the store itself (an outbox).

Every event stored while forwarding is on is marked pending in SQLite; one task in the app's loop
publishes pending events in store order with ``Nats-Msg-Id`` = ``event_id`` (so a re-send after a crash
or a lost ack is dropped by the stream's duplicate window) and the event's ``traceparent``, then marks
them done. NATS being down never loses an event and never blocks ingestion: pending rows wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import TYPE_CHECKING

import nats
import orjson

from .._bootstrap import bootstrap
from .._errors import EventValidationError, PermanentDeliveryError
from .._natsutil import max_payload, translate_nats_error
from .._propagation import headers_for_ids
from .._redact import redact, redact_url
from ..subjects import validate_subject
from ._records import StoredEvent
from ._store import EventStore, ForwardState

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.js.client import JetStreamContext

__all__ = ["Forwarder"]

logger = logging.getLogger("otel_commerce.collector")

_BATCH = 256
_PUBLISH_TIMEOUT_SECONDS = 5.0
_MAX_BACKOFF_SECONDS = 10.0
_IDLE_POLL_SECONDS = 1.0


class Forwarder:
    """Publishes the store's pending events to JetStream; ``start()`` / ``stop()`` in the app's loop."""

    def __init__(self, store: EventStore, nats_url: str, *, connect_timeout_seconds: float = 5.0) -> None:
        self._store = store
        self._url = nats_url
        self._connect_timeout = connect_timeout_seconds
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.forwarded = 0
        self.failed = 0
        self.last_error = ""

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    def notify(self) -> None:
        """Wake the worker: new pending events were stored."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="otel-commerce-forwarder")

    async def stop(self, timeout_seconds: float = 5.0) -> None:
        """Stop the worker (pending events stay in the store for the next start) and close NATS."""
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout_seconds)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._task.cancel()
        if self._nc is not None:
            try:
                await asyncio.wait_for(self._nc.close(), timeout_seconds)
            except Exception as exc:  # closing is best effort
                logger.debug("closing NATS: %s", exc)

    async def _sleep(self, seconds: float) -> None:
        """Wait ``seconds`` unless woken (new events) or stopping."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _connect(self) -> JetStreamContext:
        if self._js is not None and self._nc is not None and not self._nc.is_closed:
            return self._js
        self._nc = await nats.connect(
            self._url,
            connect_timeout=self._connect_timeout,
            max_reconnect_attempts=-1,
            allow_reconnect=True,
            error_cb=self._on_error,
        )
        js = self._nc.jetstream()
        await bootstrap(js)
        self._js = js
        logger.info("forwarding collector events to %s", redact_url(self._url))
        return js

    async def _on_error(self, exc: Exception) -> None:
        message = redact(f"{type(exc).__name__}: {exc}")
        if message != self.last_error:
            logger.warning("NATS connection to %s: %s", redact_url(self._url), message)
        self.last_error = message

    async def _run(self) -> None:
        backoff = 0.2
        while not self._stopping.is_set():
            try:
                js = await self._connect()
                sent = await self._forward_batch(js)
                backoff = 0.2
                if sent < _BATCH:
                    await self._sleep(_IDLE_POLL_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = redact(f"{type(exc).__name__}: {exc}")
                logger.warning("forwarding to NATS failed (retrying in %.1fs): %s", backoff, self.last_error)
                if self._nc is not None and self._nc.is_closed:
                    self._nc, self._js = None, None
                await self._sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)

    async def _forward_batch(self, js: JetStreamContext) -> int:
        events = await asyncio.to_thread(self._store.pending_forward, _BATCH)
        if not events:
            return 0
        limit = max_payload(js)
        results = await asyncio.gather(*(self._publish(js, e, limit) for e in events), return_exceptions=True)
        done: list[int] = []
        failed: list[int] = []
        first_error: BaseException | None = None
        for event, res in zip(events, results, strict=False):
            if res is None:
                done.append(event.seq)
            elif isinstance(res, PermanentDeliveryError):
                logger.error("event %s cannot be forwarded: %s", event.event_id, res)
                failed.append(event.seq)
            elif first_error is None:
                first_error = res
        await asyncio.to_thread(self._store.mark_forwarded, done, ForwardState.DONE)
        await asyncio.to_thread(self._store.mark_forwarded, failed, ForwardState.FAILED)
        self.forwarded += len(done)
        self.failed += len(failed)
        if first_error is not None:
            raise first_error
        return len(events)

    async def _publish(self, js: JetStreamContext, event: StoredEvent, limit: int) -> None:
        try:
            subject = validate_subject(event.subject)
        except EventValidationError as exc:
            raise PermanentDeliveryError(str(exc)) from exc
        payload = orjson.dumps(event.envelope)
        if len(payload) > limit:
            raise PermanentDeliveryError(f"envelope of {len(payload)} bytes is over the max payload {limit}")
        headers = headers_for_ids({"Nats-Msg-Id": event.event_id}, event.trace_id, event.span_id)
        try:
            await js.publish(subject, payload, timeout=_PUBLISH_TIMEOUT_SECONDS, headers=headers)
        except Exception as exc:
            raise translate_nats_error(exc, f"forward {subject}") from exc
