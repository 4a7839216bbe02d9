"""Forward stored events to the COMMERCE stream, from the store itself (an outbox).

Every event stored while forwarding is on is marked pending in SQLite; one task in the app's loop
publishes pending events in store order through the library's :class:`JetStreamSink` (connection
supervision that never gives up and never leaks a connection, pipelined publish, a deadline on every
ack, one error translation), with ``Nats-Msg-Id`` = ``event_id`` (a re-send after a crash or a lost ack
is dropped by the stream's duplicate window) and the event's ``traceparent``.

The SQLite store is the queue, not the delivery engine: a row is marked done only on a PubAck, or
failed on a permanent error (an invalid subject, over the server's max payload, a JetStream
rejection); never by an age or attempt cap. NATS being down never loses an event and never blocks
ingestion: pending rows wait, however long the outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson

from .._delivery import backoff_seconds
from .._errors import EventValidationError, PermanentDeliveryError
from .._model import validate_subject
from .._redact import redact, redact_url
from .._sinks import JetStreamSink, headers_for_ids, prepare_message
from ._records import StoredEvent
from ._store import EventStore, ForwardState

__all__ = ["Forwarder"]

logger = logging.getLogger("otel_commerce.collector")

_BATCH = 256
_ACK_TIMEOUT_SECONDS = 5.0
_BACKOFF_INITIAL_SECONDS = 0.2
_BACKOFF_MAX_SECONDS = 10.0
_IDLE_POLL_SECONDS = 1.0
_READY_POLL_SECONDS = 0.5


class Forwarder:
    """Publishes the store's pending events to JetStream; ``start()`` / ``stop()`` in the app's loop."""

    def __init__(
        self,
        store: EventStore,
        nats_url: str,
        *,
        connect_options: dict[str, Any] | None = None,
        ack_timeout_seconds: float = _ACK_TIMEOUT_SECONDS,
        batch_size: int = _BATCH,
    ) -> None:
        self._store = store
        self._url = nats_url
        self._sink = JetStreamSink(nats_url, ack_timeout_seconds=ack_timeout_seconds, connect_options=connect_options)
        self._batch = batch_size
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.forwarded = 0
        self.failed = 0
        self.attempts = 0  # publish rounds that failed transiently (rows stayed pending)
        self.last_error = ""

    @property
    def connected(self) -> bool:
        return self._sink.ready()

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
        try:
            await asyncio.wait_for(self._sink.close(), timeout_seconds)
        except Exception as exc:  # closing is best effort
            logger.debug("closing NATS: %s", redact(exc))

    async def _sleep(self, seconds: float) -> None:
        """Wait ``seconds`` unless woken (new events) or stopping."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _run(self) -> None:
        await self._sink.start()
        failures = 0
        announced = False
        while not self._stopping.is_set():
            if not self._sink.ready():
                await self._sink.wait_ready(_READY_POLL_SECONDS)
                continue
            if not announced:
                logger.info("forwarding collector events to %s", redact_url(self._url))
                announced = True
            try:
                sent, error = await self._forward_batch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # e.g. the store failed: rows stay pending, try again later
                sent, error = 0, f"{type(exc).__name__}: {exc}"
            if error is not None:
                error = redact(error)
                failures += 1
                self.attempts += 1
                delay = backoff_seconds(failures, _BACKOFF_INITIAL_SECONDS, _BACKOFF_MAX_SECONDS)
                if error != self.last_error or failures % 30 == 1:
                    logger.warning("forwarding to NATS failed (retrying in %.1fs): %s", delay, error)
                self.last_error = error
                await self._sleep(delay)
                continue
            failures = 0
            if sent < self._batch:
                await self._sleep(_IDLE_POLL_SECONDS)

    async def _forward_batch(self) -> tuple[int, str | None]:
        """Publish one batch of pending rows: ``(rows read, first transient error or None)``."""
        events = await asyncio.to_thread(self._store.pending_forward, self._batch)
        if not events:
            return 0, None
        items: list[Any] = []
        sendable: list[StoredEvent] = []
        failed: list[int] = []
        for event in events:
            try:
                items.append(_message(event))
                sendable.append(event)
            except EventValidationError as exc:
                logger.error("event %s cannot be forwarded: %s", event.event_id, redact(exc))
                failed.append(event.seq)
        outcomes = await self._sink.send(items) if items else []
        done: list[int] = []
        first_error: str | None = None
        for event, outcome in zip(sendable, outcomes, strict=True):
            if outcome is None:
                done.append(event.seq)
            elif isinstance(outcome, PermanentDeliveryError):
                logger.error("event %s cannot be forwarded: %s", event.event_id, redact(outcome))
                failed.append(event.seq)
            elif first_error is None:
                first_error = str(outcome)
        await asyncio.to_thread(self._store.mark_forwarded, done, ForwardState.DONE)
        await asyncio.to_thread(self._store.mark_forwarded, failed, ForwardState.FAILED)
        self.forwarded += len(done)
        self.failed += len(failed)
        return len(events), first_error


def _message(event: StoredEvent) -> Any:
    """The prepared JetStream message of a stored event (raises ``EventValidationError`` for a bad subject)."""
    subject = validate_subject(event.subject)
    headers = headers_for_ids({"Nats-Msg-Id": event.event_id}, event.trace_id, event.span_id)
    return prepare_message(subject, orjson.dumps(event.envelope), headers)[0]
