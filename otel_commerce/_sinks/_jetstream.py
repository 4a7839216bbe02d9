"""``JetStreamSink``: a pipelined JetStream publisher with a bounded in-flight window.

Each message is a core ``PUB`` with a reply subject ``<inbox>.<n>``; one wildcard subscription on
``<inbox>.*`` collects the JetStream acks (facts §9: 1.5-1.9x ``publish_async``, whose futures have no
timeout). At most ``window`` messages are unacknowledged at a time and every ack has a deadline. A
``PubAck`` with ``duplicate: true`` counts as delivered (``Nats-Msg-Id`` = the event_id).

The sink connects itself, in the engine's loop: a failed first connect, or a connection closed after
nats-py's reconnect budget, is retried forever with backoff. Once connected it runs ``bootstrap`` (create
COMMERCE when missing, never reconcile). Losing the connection fails the in-flight messages at once
(the engine retries them; the server de-duplicates those that were stored).

Before sending, payload + header block is compared with the server's ``max_payload`` (learnt on
connecting): a message over it is rejected alone (permanent error: counted, ``on_error``) and never
sent — sending it would make the server close the connection and fail the whole batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import orjson
from nats import errors as nats_errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import errors as js_errors
from nats.protocol import parser as nats_parser

from .. import _log
from .._delivery import Outcome, Prepared, abandon, backoff_seconds, enter_hold, leave_hold
from .._errors import DeliveryError, PermanentDeliveryError, StreamError, TransientDeliveryError
from .._model import Pending, encode_envelope
from .._redact import redact_url
from ._bootstrap import bootstrap
from ._natsutil import max_payload, translate_nats_error
from ._selftrace import start_send_spans

__all__ = ["JetStreamSink", "event_header_block", "header_block", "header_block_size", "prepare_message"]

_HEADER_KEY = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # nats-py's header key rule (RFC 7230 token)

logger = logging.getLogger("otel_commerce")

_DEFAULT_WINDOW = 1024
_DEFAULT_ACK_TIMEOUT_SECONDS = 5.0
_CONNECT_BACKOFF_INITIAL_SECONDS = 0.2
_CONNECT_BACKOFF_MAX_SECONDS = 5.0
_DEFAULT_CONNECT_OPTIONS: dict[str, Any] = {
    "connect_timeout": 2.0,
    "reconnect_time_wait": 1.0,
    "max_reconnect_attempts": 60,
    "ping_interval": 20,
}


class _Done:
    """Set once every ack of a chunk is in (or failed): an ``asyncio.Event`` reduced to one future.

    The sink awaits the future itself, its deadline a ``call_later`` timer: the sending coroutine resumes in
    the loop turn after the last ack. (``wait_for(event.wait(), ...)`` would take three turns — the wait
    task, then ``wait_for``'s waiter, then the caller — each a GIL hand-over to a busy recording thread.)
    """

    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def set(self) -> None:
        if not self.future.done():
            self.future.set_result(True)

    def is_set(self) -> bool:
        return self.future.done()

    async def wait(self) -> None:
        await asyncio.shield(self.future)


def _ack_deadline(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)


class _AckBatch:
    """The acks awaited for one chunk of a batch: the messages with reply counters ``base + 1 .. base + count``.

    A ``send`` writes one chunk at a time and waits for its acks (or their deadline) before the next; the
    engine may run a few sends at once (``max_concurrent_sends``), so a connection awaits the acks of a few
    chunks (``_Connection.chunks``, in counter order): an ack is matched by its reply counter alone, with no
    per-message entry (a late ack of a settled chunk has a counter in none of them).
    """

    __slots__ = ("base", "count", "done", "pending", "remaining", "results", "start")

    def __init__(self, results: list[Outcome], start: int, base: int, count: int) -> None:
        self.results = results
        self.start = start  # results index of the chunk's first message
        self.base = base
        self.count = count
        self.pending = bytearray(b"\x01") * count  # 1: sent, ack still awaited
        self.remaining = 0
        self.done = _Done()

    def resolve(self, counter: int, outcome: Outcome) -> None:
        """The ack (or failure) of the message with reply counter ``counter``; later ones for it are ignored."""
        k = counter - self.base - 1
        if 0 <= k < self.count and self.pending[k]:
            self.pending[k] = 0
            self.results[self.start + k] = outcome
            self.remaining -= 1
            if self.remaining <= 0:
                self.done.set()

    def fail_pending(self, outcome: Outcome) -> None:
        """Every message still awaiting its ack gets ``outcome``."""
        base = self.base
        for k in range(self.count):
            if self.pending[k]:
                self.resolve(base + k + 1, outcome)


class _Connection:
    """State bound to the engine's loop (abandoned as a whole in a forked child)."""

    def __init__(self) -> None:
        self.nc: NATS | None = None
        self.inbox = ""
        self.counter = 0
        self.chunks: list[_AckBatch] = []  # the chunks whose acks are awaited, oldest first
        self.ready = asyncio.Event()
        self.closing = False
        self.task: asyncio.Task[None] | None = None

    @property
    def current(self) -> _AckBatch | None:
        """The oldest chunk whose acks are awaited (setting it replaces them all: tests)."""
        chunks = self.chunks
        return chunks[0] if chunks else None

    @current.setter
    def current(self, batch: _AckBatch | None) -> None:
        self.chunks = [] if batch is None else [batch]

    def chunk_of(self, counter: int) -> _AckBatch | None:
        """The awaited chunk that holds reply counter ``counter`` (None: a late or unknown ack)."""
        for batch in self.chunks:
            if 0 <= counter - batch.base - 1 < batch.count:
                return batch
        return None

    @property
    def waiting(self) -> bool:
        """True while some message's ack is awaited."""
        return any(batch.remaining > 0 for batch in self.chunks)

    def ack(self, subject: bytes | str, outcome: Outcome) -> None:
        """Settle the message whose reply subject is ``subject`` (``<inbox>.<counter>``)."""
        try:
            counter = int(subject[len(self.inbox) + 1 :])
        except ValueError:  # pragma: no cover - not one of our reply subjects
            return
        batch = self.chunk_of(counter)
        if batch is not None:
            batch.resolve(counter, outcome)


class JetStreamSink:
    """Delivers envelopes to JetStream (subject ``commerce.<type>``) with exactly-once headers."""

    name = "jetstream"
    #: sends the engine may run at once on this sink (acks are matched by reply counter to their chunk):
    #: under a burst the server holds the next batches while the acks of one come back
    max_concurrent_sends = 4

    def __init__(
        self,
        url: str,
        *,
        ensure_stream: bool = True,
        window: int = _DEFAULT_WINDOW,
        ack_timeout_seconds: float = _DEFAULT_ACK_TIMEOUT_SECONDS,
        connect_options: dict[str, Any] | None = None,
    ) -> None:
        if window < 1 or ack_timeout_seconds <= 0:
            raise ValueError("window must be >= 1 and ack_timeout_seconds > 0")
        self._url = url
        # "nats://a:4222,nats://b:4222" (documented) -> a server list: nats-py does not split strings
        self._servers = [u.strip() for u in url.split(",") if u.strip()]
        self._connect_failures = 0
        self._ensure_stream = ensure_stream
        self._window = window
        self._ack_timeout = ack_timeout_seconds
        self._options = {**_DEFAULT_CONNECT_OPTIONS, **(connect_options or {})}
        self._conn: _Connection | None = None
        #: The real cause of the last failed connect ("" once connected), for the engine's summaries.
        self.last_error = ""

    @property
    def endpoint(self) -> str:
        """The server URL(s), credentials redacted."""
        return redact_url(self._url)

    max_age_seconds: float | None = None  # set by the engine that owns this sink (for the window check)

    def _check_window(self, window_seconds: float) -> None:
        """Warn when retries may outlive the stream's duplicate window (exactly-once would not hold)."""
        age = self.max_age_seconds
        if age is not None and window_seconds and age > window_seconds:
            logger.warning(
                "otel-commerce: stream COMMERCE has a %.0fs duplicate window but events are retried for up to "
                "%.0fs: a retry after the window can store a duplicate. Run `otel-commerce bootstrap "
                "--reconcile` (10-minute window) or lower max_age_seconds.",
                window_seconds,
                age,
            )

    def spool_identity(self) -> str:
        """This sink's part of the spool key: its servers and stream (a changed URL is another sink)."""
        return "jetstream:" + ",".join(sorted(self._servers)) + "/COMMERCE"

    # ------------------------------------------------------------------ encoding (delivery thread)
    def prepare(self, pending: Pending) -> Prepared | None:
        event = pending.event
        if event is None:
            return None
        # one pass: envelope + GA4 / Meta CAPI blocks straight to JSON bytes (same bytes as
        # apply_marketing + to_json, tests/test_wire_golden.py); the event itself is left unchanged
        # copied (~0.05 µs): an orjson result kept alive pins its ~4 KiB output buffer, so every queued event
        # would touch fresh heap pages (1-2 page faults, ~3 µs, measured); the copy is exact-size, and the
        # buffer is freed at once and reused by the next encode
        payload = _copy % (encode_envelope(event, pending.items),)
        hdr = event_header_block(event.event_id, event.trace_id, event.span_id, pending.trace_flags, pending.trace_state)
        subject = _SUBJECTS.get(event.type)  # event.subject ("commerce." + type), one string per type
        if subject is None:
            subject = event.subject
            if len(_SUBJECTS) < 1024:
                _SUBJECTS[event.type] = subject
        # no headers dict is kept (fewer objects per queued event): self-tracing reads the block back
        return (subject, payload, None, len(payload) + len(hdr), hdr), len(payload)

    # ------------------------------------------------------------------ connection
    def warm(self) -> None:
        """On the caller's thread, before the delivery thread starts: build the TLS context nats-py would build."""
        if "tls" not in self._options and any(u.startswith(("tls://", "wss://")) for u in self._servers):
            import ssl

            self._options["tls"] = ssl.create_default_context()

    async def start(self) -> None:
        conn = self._conn = _Connection()
        conn.task = asyncio.ensure_future(self._supervise(conn))

    def ready(self) -> bool:
        conn = self._conn
        return conn is not None and conn.ready.is_set() and conn.nc is not None and conn.nc.is_connected

    async def wait_ready(self, timeout_seconds: float) -> bool:
        conn = self._conn
        if conn is None:
            return False
        try:
            await asyncio.wait_for(conn.ready.wait(), timeout_seconds)
        except asyncio.TimeoutError:
            return False
        return self.ready()

    async def _supervise(self, conn: _Connection) -> None:
        failures = 0
        while not conn.closing:
            lost = asyncio.Event()
            nc = await self._connect(conn, lost)
            if nc is None:
                failures += 1
                await asyncio.sleep(
                    backoff_seconds(failures, _CONNECT_BACKOFF_INITIAL_SECONDS, _CONNECT_BACKOFF_MAX_SECONDS)
                )
                continue
            failures = 0
            conn.nc = nc
            conn.ready.set()
            _log.recovered(self.name)
            await lost.wait()  # set by closed_cb: nats-py gave up reconnecting
            conn.ready.clear()
            conn.nc = None
            self._fail_inflight(conn, "connection closed")

    async def _connect(self, conn: _Connection, lost: asyncio.Event) -> NATS | None:
        async def on_disconnected() -> None:
            conn.ready.clear()
            self._fail_inflight(conn, "disconnected before the ack")

        async def on_reconnected() -> None:
            conn.ready.set()

        async def on_closed() -> None:
            conn.ready.clear()
            lost.set()

        seen: list[BaseException] = []  # nats-py's NoServersError hides the cause: error_cb sees it

        async def on_error(exc: Exception) -> None:
            seen.append(exc)
            logger.debug("otel-commerce: nats error on %s: %s", redact_url(self._url), _log.cause_of(exc))
            if not conn.ready.is_set() and not isinstance(exc, (ConnectionResetError, BrokenPipeError, EOFError)):
                # while (re)connecting: the real cause at once (nats-py may retry for a minute before giving
                # up), then rate-limited summaries; a reset after a refusal is not the cause
                self.last_error = f"cannot connect to {redact_url(self._url)}: {_log.cause_of(exc)}"
                _log.failure(self.name, "unreachable", self.last_error, outage=True)

        nc: NATS | None = None
        try:
            # A TLS handshake holds OpenSSL state on this thread: forks wait for it (bounded, see _delivery._process).
            tls = self._options.get("tls") is not None
            if tls:
                enter_hold()
            try:
                nc = NATS()  # (what nats.connect does) held here: a connect cancelled by close() is closed below
                await nc.connect(
                    self._servers,
                    disconnected_cb=on_disconnected,
                    reconnected_cb=on_reconnected,
                    closed_cb=on_closed,
                    error_cb=on_error,
                    **self._options,
                )
            finally:
                if tls:
                    leave_hold()
            if self._ensure_stream:
                try:
                    result = await bootstrap(nc.jetstream(timeout=self._ack_timeout))
                    self._check_window(float(result.stream.config.duplicate_window or 0.0))
                except StreamError as exc:  # e.g. overlapping subjects: publishing will say more
                    logger.warning("otel-commerce: %s", exc)
            self._connect_failures = 0
            self.last_error = ""
            conn.inbox = nc.new_inbox()
            sub = await nc.subscribe(conn.inbox + ".*", cb=self._ack_handler(conn))
            _take_acks_directly(nc, sub._id, conn)
            return nc
        except asyncio.CancelledError:  # close() while connecting: no socket or task of nats-py left behind
            if nc is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(nc.close(), 1.0)
            raise
        except Exception as exc:
            self._connect_failures += 1
            self.last_error = f"cannot connect to {redact_url(self._url)}: {_log.cause_of(exc, seen)}"
            _log.failure(self.name, "unreachable", self.last_error, outage=True)  # WARNING now, then summaries
            if nc is not None:
                try:
                    await asyncio.wait_for(nc.close(), 1.0)
                except Exception:
                    logger.debug("otel-commerce: closing a half-open nats connection failed", exc_info=True)
            return None

    def _ack_handler(self, conn: _Connection) -> Any:
        async def on_ack(msg: Msg) -> None:  # acks with headers (a 503 status): see _take_acks_directly
            conn.ack(msg.subject, _ack_outcome(msg))

        return on_ack

    def _fail_inflight(self, conn: _Connection, why: str) -> None:
        chunks, conn.chunks = conn.chunks, []
        for batch in chunks:
            batch.fail_pending(TransientDeliveryError(f"jetstream: {why}"))

    # ------------------------------------------------------------------ publishing
    async def send(self, items: Sequence[Any]) -> list[Outcome]:
        finish = start_send_spans(items)  # OTEL_COMMERCE_SELF_TRACING=on: messaging spans (else None)
        results = await self._send(items)
        if finish is not None:
            finish(results)
        return results

    async def _send(self, items: Sequence[Any]) -> list[Outcome]:
        conn = self._conn
        nc = conn.nc if conn is not None else None
        results: list[Outcome] = [None] * len(items)
        if conn is None or nc is None or not nc.is_connected:
            return [TransientDeliveryError("jetstream: not connected")] * len(items)
        limit = max_payload(nc)
        prefix = conn.inbox.encode() + b"."
        for start in range(0, len(items), self._window):
            end = min(start + self._window, len(items))
            if nc.is_closed or nc.is_draining_pubs or not nc.is_connected:
                err: DeliveryError = TransientDeliveryError("jetstream: disconnected while publishing")
                for j in range(start, len(items)):  # this chunk and every later one: retried
                    results[j] = err
                break
            # One buffer of HPUB frames per chunk (what nats-py's publish writes, message by message); the
            # message at index i gets reply counter base + 1 + (i - start).
            base = conn.counter
            conn.counter = base + end - start
            batch = _AckBatch(results, start, base, end - start)
            frames: list[bytes] = []  # HPUB line, header block, payload, CRLF of each message: one join copies them
            add = frames.extend
            payload_bytes = 0
            counter = base
            for subject, payload, _headers, wire_size, hdr in items[start:end] if start or end < len(items) else items:
                counter += 1
                if wire_size > limit:  # the server would close the connection: reject it alone, never send it
                    batch.pending[counter - base - 1] = 0
                    results[start + counter - base - 1] = PermanentDeliveryError(
                        f"jetstream: message of {wire_size} bytes (payload {len(payload)} + header block "
                        f"{wire_size - len(payload)}) is over the server's max payload of {limit} bytes (max_payload)"
                    )
                    continue
                add((_HPUB % (subject.encode(), prefix, counter, len(hdr), wire_size), hdr, payload, _CRLF))
                payload_bytes += len(payload)
            sent = batch.remaining = len(frames) // 4
            if not sent:
                continue
            chunks = conn.chunks
            chunks.append(batch)
            try:
                try:
                    await _write_frames(nc, b"".join(frames), sent, payload_bytes)
                except Exception as exc:
                    batch.fail_pending(translate_nats_error(exc, f"publish {items[start][0]}"))
                    continue  # the next chunk checks the connection again
                if batch.remaining > 0:
                    future = batch.done.future
                    deadline = future.get_loop().call_later(self._ack_timeout, _ack_deadline, future)
                    try:
                        all_in = await future  # False: the deadline passed first
                    finally:
                        deadline.cancel()
                    if not all_in:
                        batch.fail_pending(TransientDeliveryError(f"jetstream: no ack within {self._ack_timeout:g}s"))
            finally:
                if batch in chunks:  # (the list is replaced when the connection is lost)
                    chunks.remove(batch)
        return results

    async def close(self) -> None:
        conn = self._conn
        if conn is None:
            return
        conn.closing = True
        task = conn.task
        if task is not None and not task.done():
            task.cancel()  # awaited: a task left pending would be destroyed with the loop (a traceback at exit)
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), 2.0)
        nc = conn.nc
        if nc is not None and not nc.is_closed:
            try:
                await asyncio.wait_for(nc.close(), 2.0)
            except Exception:
                logger.debug("otel-commerce: closing the nats connection failed", exc_info=True)
        self._fail_inflight(conn, "closed")

    def forget(self) -> None:
        abandon(self._conn)
        self._conn = None


_copy = b"%b"  # _copy % (data,): an exact-size copy of bytes ``data``
_SUBJECTS: dict[str, str] = {}  # event type -> its subject (prepare)
_HDR_LINE = b"NATS/1.0\r\n"
_CRLF = b"\r\n"
_NEWLINES = str.maketrans({"\r": " ", "\n": " "})


#: One message as :meth:`JetStreamSink._send` writes it: this ``HPUB`` line (reply ``<inbox>.<counter>``), then the
#: header block, the payload and CRLF (the chunk's pieces joined once) — see :func:`hpub_frame`.
_HPUB = b"HPUB %s %s%d %d %d\r\n"


def hpub_frame(subject: str, reply_prefix: bytes, counter: int, hdr: bytes, payload: bytes) -> bytes:
    """The frame the sink writes for one message: ``hpub_line(subject, reply_prefix + counter, ...)`` + block +
    payload + CRLF, built from the pieces the sink joins."""
    line = _HPUB % (subject.encode(), reply_prefix, counter, len(hdr), len(hdr) + len(payload))
    return b"".join((line, hdr, payload, _CRLF))


def hpub_line(subject: str, reply: bytes, header_size: int, total_size: int) -> bytes:
    """The ``HPUB <subject> <reply> <#header bytes> <#total bytes>\\r\\n`` line nats-py writes before a message."""
    return b"HPUB %s %s %d %d\r\n" % (subject.encode(), reply, header_size, total_size)


def header_block(headers: dict[str, str] | None) -> bytes:
    """The NATS header block nats-py writes for ``headers`` (``NATS/1.0\\r\\n``, ``k: v\\r\\n``…, ``\\r\\n``).

    Same rules as nats-py's ``Client.publish``: keys and values stripped, empty keys skipped, CR/LF in a
    value become spaces, a key outside the RFC 7230 token set raises ``nats.errors.BadHeaderError``.
    """
    if headers is None:
        return b""
    parts = [_HDR_LINE]
    for key, value in headers.items():
        k = key.strip()
        if not k:
            continue
        if not _HEADER_KEY.fullmatch(k):
            raise nats_errors.BadHeaderError(k)
        parts.append(f"{k}: {value.strip().translate(_NEWLINES)}\r\n".encode())
    parts.append(_CRLF)
    return b"".join(parts)


_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def event_header_block(event_id: str, trace_id: str, span_id: str, trace_flags: int = 1, trace_state: str = "") -> bytes:
    """``header_block(headers_for_ids({"Nats-Msg-Id": event_id}, trace_id, span_id, trace_flags, trace_state))``,
    written directly (no dict): ``Nats-Msg-Id``, then the W3C ``traceparent`` / ``tracestate`` of the event."""
    eid = event_id.strip()
    if "\r" in eid or "\n" in eid:
        eid = eid.translate(_NEWLINES)
    if len(trace_id) == 32 and len(span_id) == 16 and trace_id != _ZERO_TRACE and span_id != _ZERO_SPAN:
        if trace_state:
            state = trace_state.strip().translate(_NEWLINES)
            return (
                f"NATS/1.0\r\nNats-Msg-Id: {eid}\r\ntraceparent: 00-{trace_id}-{span_id}-{trace_flags & 0xFF:02x}\r\n"
                f"tracestate: {state}\r\n\r\n"
            ).encode()
        return (
            f"NATS/1.0\r\nNats-Msg-Id: {eid}\r\ntraceparent: 00-{trace_id}-{span_id}-{trace_flags & 0xFF:02x}\r\n\r\n"
        ).encode()
    return f"NATS/1.0\r\nNats-Msg-Id: {eid}\r\n\r\n".encode()


def header_block_size(headers: dict[str, str] | None) -> int:
    """Bytes of the NATS header block nats-py sends for ``headers``.

    The server compares header block + payload with its ``max_payload`` (nats-server ``HPUB``).
    """
    return len(header_block(headers))


def prepare_message(subject: str, payload: bytes, headers: dict[str, str] | None) -> Prepared:
    """``((subject, payload, headers, wire_size, header_block), len(payload))``: one message for
    :meth:`JetStreamSink.send` (the header block is encoded here, on the delivery thread, once per message)."""
    hdr = header_block(headers)
    return (subject, payload, headers, len(payload) + len(hdr), hdr), len(payload)


#: The private nats-py ``Client`` attributes this sink uses (nats-py pinned to the tested minor range in
#: pyproject.toml; tests/test_nats_contract.py fails when one of them changes).
NATS_PRIVATE_ATTRIBUTES = ("_send_command", "_flush_pending", "_flush_queue", "_process_msg", "_ps", "stats")
_MSG_OP = b"MSG "
_AWAITING_CONTROL_LINE = nats_parser.AWAITING_CONTROL_LINE


async def _write_frames(nc: NATS, frames: bytes, count: int, payload_bytes: int) -> None:
    """Queue ready HPUB frames on nats-py's outgoing buffer and wake its flusher (as ``publish`` does).

    Private nats-py calls, here only: one ``_send_command`` per chunk instead of one ``publish`` per message
    (nats-py would re-encode the headers and build a frame per call). Reconnects, the pending-size limit and
    the socket writes stay nats-py's.
    """
    nc.stats["out_msgs"] += count
    nc.stats["out_bytes"] += payload_bytes
    await nc._send_command(frames)
    flush_queue = nc._flush_queue
    if flush_queue is not None and flush_queue.empty():
        await nc._flush_pending()


def _take_acks_directly(nc: NATS, sid: int, conn: _Connection) -> None:
    """Settle plain acks on our inbox straight from nats-py's protocol parser (private, here only).

    nats-py's ``_process_msg`` would build a ``Msg``, queue it and run the subscription's callback in
    another task for every ack; an ack without headers (a PubAck JSON) is settled here instead, in the
    parser's own call. Everything else — other subscriptions, acks with headers (a 503 status) — goes to
    nats-py's ``_process_msg`` unchanged. The subscription stays a real one (nats-py re-subscribes it
    after a reconnect; the parser and this hook belong to the same ``Client`` instance).

    The parser's ``parse`` is wrapped too: a read that starts with complete ``MSG`` frames of our
    subscription (the acks of a batch arrive back to back) has them settled by one regex match each (no
    coroutine per ack); at the first other frame — or when nats-py's parser is inside a frame — the rest
    goes to nats-py's own parser, in order. A ``MSG`` frame cut off by the end of a read is kept in the
    parser's buffer (in its "awaiting a control line" state, as nats-py keeps a cut control line) and put
    back in front of the next read, so the acks after a cut stay on the fast path.
    """
    process_msg = nc._process_msg
    stats = nc.stats
    parser = nc._ps
    parse = parser.parse
    sid_bytes = str(sid).encode()
    skip = len(conn.inbox) + 1  # reply subjects are "<inbox>.<counter>"
    # one complete plain PubAck of ours, as nats-server writes it: "MSG <inbox>.<counter> <sid> <#bytes>\r\n"
    # '{"stream":"<name>","seq":<n>[,"duplicate":true]}\r\n' (no CR/LF inside: the match ends with its frame)
    pattern = re.compile(
        rb"MSG " + re.escape(conn.inbox.encode()) + rb"\.(\d+) " + sid_bytes + rb" (\d+)\r\n"
        rb'(\{"stream":"[^"\r\n]*","seq":\d+(?:,"duplicate":true)?\})\r\n'
    )
    plain_ack = pattern.match
    plain_acks = pattern.findall
    # a frame's bytes besides its counter, declared size and body: "MSG " <inbox> "." " " <sid> " " CRLF CRLF
    fixed = len(b"MSG ") + skip + 1 + len(sid_bytes) + 1 + 2 + 2

    def settle(subject: bytes, data: bytes) -> None:
        stats["in_msgs"] += 1
        stats["in_bytes"] += len(data)
        if conn.chunks:
            try:
                counter = int(subject[skip:])
            except ValueError:  # pragma: no cover - not one of our reply subjects
                return
            batch = conn.chunk_of(counter)
            if batch is not None:
                batch.resolve(counter, _ack_data_outcome(data))

    async def on_msg(msg_sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes) -> None:
        if msg_sid != sid or headers:
            await process_msg(msg_sid, subject, reply, data, headers)
            return
        settle(subject, data)

    async def fast_parse(data: bytes = b"") -> None:
        if parser.state == _AWAITING_CONTROL_LINE:
            buf = parser.buf
            if buf and (buf[:4] == _MSG_OP or _MSG_OP.startswith(buf)):  # a frame cut off by the previous read
                data = bytes(buf) + data
                del buf[:]
        if data[:4] == _MSG_OP and not parser.buf and parser.state == _AWAITING_CONTROL_LINE:
            pos = count = size = 0
            cut = False
            n = len(data)
            current = conn.current
            # the usual read: plain PubAcks back to back. All but the last frame at once: one findall, and the
            # frames found must tile that part exactly (their sizes add up to it: nothing skipped in between)
            # with declared sizes as found (else: frame by frame below, as nats-py's parser would read them)
            last = data.rfind(_MSG_OP)
            if last > 0:
                acks = plain_acks(data, 0, last)
                if acks:
                    run_counters = list(map(_COUNTER, acks))
                    run_declared = list(map(_DECLARED, acks))
                    lengths = list(map(len, map(_BODY, acks)))
                    size = sum(lengths)
                    tiled = fixed * len(acks) + sum(map(len, run_counters)) + sum(map(len, run_declared)) + size
                    if tiled == last and list(map(int, run_declared)) == lengths:
                        _settle_acks(conn, list(map(int, run_counters)))
                        pos = last
                        count = len(acks)
                    else:
                        size = 0
            # the last frame (or every frame of a read that is not only plain acks): one regex match each
            while (m := plain_ack(data, pos)) is not None:
                counter, declared, body = m.groups()
                length = len(body)
                if int(declared) != length:  # pragma: no cover - not as nats-server frames it: the loop below
                    break
                pos = m.end()
                count += 1
                size += length
                if current is not None:
                    c = int(counter)
                    k = c - current.base - 1  # settled as _AckBatch.resolve does
                    if not 0 <= k < current.count:  # another chunk in flight (or a late ack: none)
                        current = conn.chunk_of(c) or current
                        k = c - current.base - 1
                    if 0 <= k < current.count and current.pending[k]:
                        current.pending[k] = 0
                        current.results[current.start + k] = None
                        current.remaining -= 1
                        if current.remaining <= 0:
                            current.done.set()
            # anything else (an error ack, a PubAck of another shape): frame by frame
            while data.startswith(_MSG_OP, pos):  # "MSG <subject> <sid> <#bytes>\r\n<payload>\r\n"
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    cut = True
                    break
                args = data[pos + 4 : eol].split(b" ")
                if len(args) != 3 or args[1] != sid_bytes or not args[2].isdigit():
                    break
                start = eol + 2
                end = start + int(args[2])
                if end + 2 > n:
                    cut = True
                    break
                pos = end + 2
                count += 1
                size += end - start
                if current is None:
                    continue
                try:
                    c = int(args[0][skip:])
                except ValueError:  # pragma: no cover - not one of our reply subjects
                    continue
                k = c - current.base - 1  # settled as _AckBatch.resolve does
                if not 0 <= k < current.count:
                    current = conn.chunk_of(c) or current
                    k = c - current.base - 1
                if 0 <= k < current.count and current.pending[k]:
                    body = data[start:end]
                    if body[:11] == b'{"stream":"' and body[-1:] == b"}" and b'"error"' not in body:
                        current.pending[k] = 0  # a PubAck: stored (or a duplicate of a stored message)
                        current.results[current.start + k] = None
                        current.remaining -= 1
                        if current.remaining <= 0:
                            current.done.set()
                    else:
                        current.resolve(current.base + 1 + k, _ack_data_outcome(body))
            stats["in_msgs"] += count
            stats["in_bytes"] += size
            if pos >= n:
                return
            data = data[pos:]
            if cut:  # kept back in nats-py's parser buffer, as it would keep it: the next read completes it
                parser.buf.extend(data)  # here, on the fast path (nats-py's parser resets it on a reconnect)
                return
        await parse(data)

    nc._process_msg = on_msg  # type: ignore[method-assign, assignment]
    parser.parse = fast_parse  # type: ignore[method-assign]


_COUNTER = itemgetter(0)
_DECLARED = itemgetter(1)
_BODY = itemgetter(2)


def _settle_acks(conn: _Connection, counters: list[int]) -> None:
    """Settle plain PubAcks (stored, or duplicates of stored messages: delivered either way) by reply counter, as
    :meth:`_AckBatch.resolve` does one by one: an awaited message is settled once, a late or unknown counter is
    ignored. Consecutive ascending counters (acks in send order, the usual case) are settled a chunk's slice at
    a time."""
    n = len(counters)
    first = counters[0]
    if counters != list(range(first, first + n)):  # out of order: one by one
        for counter in counters:
            batch = conn.chunk_of(counter)
            if batch is not None:
                batch.resolve(counter, None)
        return
    stop = first + n
    for batch in list(conn.chunks):
        lo = max(first, batch.base + 1) - batch.base - 1  # the run's part in this chunk: indexes lo .. hi - 1
        hi = min(stop, batch.base + batch.count + 1) - batch.base - 1
        if lo >= hi:
            continue
        pending = batch.pending
        if pending.count(1, lo, hi) == hi - lo:  # all awaited (else a repeated ack: one by one)
            pending[lo:hi] = bytes(hi - lo)
            start = batch.start
            batch.results[start + lo : start + hi] = [None] * (hi - lo)
            batch.remaining -= hi - lo
            if batch.remaining <= 0:
                batch.done.set()
        else:
            for k in range(lo, hi):
                batch.resolve(batch.base + 1 + k, None)


def _ack_outcome(msg: Msg) -> Outcome:
    """Outcome of one JetStream ack message (PubAck JSON, an error, or a no-responders status)."""
    headers = msg.headers
    if headers and headers.get("Status") == "503":
        return TransientDeliveryError("jetstream: no responders (stream not available)", status=503)
    return _ack_data_outcome(msg.data)


def _ack_data_outcome(data: bytes) -> Outcome:
    """Outcome of a PubAck body: None when stored (or a duplicate of a stored message)."""
    if data[:11] == b'{"stream":"' and data[-1:] == b"}" and b'"error"' not in data:
        return None  # a PubAck as nats-server writes it ({"stream":..,"seq":..[,"duplicate":true]})
    try:
        ack = orjson.loads(data)
    except orjson.JSONDecodeError:
        return TransientDeliveryError(f"jetstream: unreadable ack {data[:80]!r}")
    if not isinstance(ack, dict):
        return TransientDeliveryError(f"jetstream: unexpected ack {data[:80]!r}")
    error = ack.get("error")
    if error is None:
        return None  # stored, or a duplicate of a stored message: delivered either way
    try:
        js_errors.APIError.from_error(error)
    except js_errors.APIError as exc:
        return translate_nats_error(exc, "publish")
    except Exception as exc:  # malformed error object
        return TransientDeliveryError(f"jetstream: bad error ack {error!r}: {exc}")
    return TransientDeliveryError(f"jetstream: error ack {error!r}")  # pragma: no cover
