"""``DeliveryEngine``: one background thread with its own asyncio loop, feeding every sink.

::

    submit() (any thread, never blocks)         delivery thread (asyncio loop)
      └─ bounded deque, drop-oldest ──wake──▶  intake: sink.prepare (maps + encodes) → one lane per sink
                                                lane: batch (count / bytes / linger) → sink.send
                                                      ├─ delivered          → exported
                                                      ├─ transient error    → retried after max(backoff,
                                                      │                       Retry-After), capped by
                                                      │                       attempts and age → dropped
                                                      │                       (a throttle counts no attempt)
                                                      └─ permanent error    → rejected

Every event gets a sequence number at ``submit``; ``flush`` waits until every event submitted before
it has been settled in every sink. Dropped and rejected events are counted (``stats()`` and OTel
metrics) and passed to ``on_error``. With a spool (``spill`` / ``wal``, see ``otel_commerce._delivery._spool``), what
would be dropped for a transient cause — a full queue, the attempt / age caps, the exit deadline — is
written to disk on the delivery thread instead (``spooled``) and replayed, in order, when the sinks are
reachable again and at the next start (``_spool_*`` methods below). After ``fork()`` the child abandons the inherited loop, sockets
and queue (never closing or running them), recreates its locks and starts afresh on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice, repeat, starmap
from operator import attrgetter
from typing import Any

import orjson
from opentelemetry import context as otel_context

from .. import _log
from .._errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from . import _metrics, _process
from ._retry import backoff_seconds, is_throttle, retry_delay_seconds
from ._sink import ErrorCallback, Item, Outcome, Sink, abandon

__all__ = ["DeliveryEngine"]

#: Under a burst the recording thread hands the GIL to the delivery thread every _HANDOFF_EVERY queued events,
#: waiting at most _HANDOFF_SECONDS for it to take the queue (README "The delivery engine": without it the delivery
#: thread gets the GIL once per interpreter switch interval, 5 ms, and the server idles until the burst ends).
_HANDOFF_EVERY = 128
_HANDOFF_SECONDS = 0.002

logger = logging.getLogger("otel_commerce")

_DEFAULT_QUEUE_SIZE = 10_000
_DEFAULT_BATCH_SIZE = 512
_DEFAULT_BATCH_BYTES = 1024 * 1024
#: None = adaptive: a batch leaves at once when its lane is idle; what arrives during a send is the next batch.
_DEFAULT_LINGER_SECONDS: float | None = None
_DEFAULT_MAX_ATTEMPTS = 10
#: Below the stream's 10-minute duplicate window: a retry never outlives exactly-once.
_DEFAULT_MAX_AGE_SECONDS = 300.0
_DEFAULT_BACKOFF_INITIAL_SECONDS = 0.5
_DEFAULT_BACKOFF_MAX_SECONDS = 30.0
_READY_POLL_SECONDS = 0.5
_START_BACKOFF_INITIAL_SECONDS = 0.2
_START_BACKOFF_MAX_SECONDS = 5.0
_SINK_CLOSE_SECONDS = 2.0
_MAX_REMEMBERED_FAILURES = 10_000

_COUNTERS = ("submitted", "exported", "retried", "dropped", "rejected", "spooled", "replayed")
_SPOOL_REPLAY_DELAY_SECONDS = 1.0  # quiet time after the last spill before replaying this process's own spill
_SPOOL_TICK_SECONDS = 0.05
_SPOOL_WARN_EVERY_SECONDS = 60.0
_monotonic = time.monotonic  # submit: one global read instead of two attribute reads
_ROUTE_CHUNK = 256  # events prepared between two yields to the loop (acks and responses get through)
_SEQ = attrgetter("seq")
_DATA = attrgetter("data")
_SIZE = attrgetter("size")
_consume: Callable[[Iterable[Any]], None] = deque(maxlen=0).extend  # runs an iterator to its end, keeping nothing


class _Track:
    """One submitted event: its sequence number and how many sinks have still to settle it."""

    __slots__ = ("failed", "only", "pending", "remaining", "seq", "source", "t0", "wal")

    def __init__(self, pending: Item, seq: int, t0: float, wal: Any = None) -> None:
        self.pending = pending
        self.seq = seq
        self.t0 = t0
        self.remaining = 0
        self.failed = False
        self.wal: Any = wal  # the spool's reference of its write-ahead record (acknowledged when settled)
        self.only: frozenset[str] | None = None  # a replayed event owed to these sinks only
        self.source: _ReplayFile | None = None  # the spool file it was replayed from


class _ReplayFile:
    """A spool file being replayed: deleted once every event read from it is settled."""

    __slots__ = ("path", "pos", "records", "remaining")

    def __init__(self, path: Any) -> None:
        self.path = path
        self.records: list[Any] | None = None
        self.pos = 0
        self.remaining = 0


class _Entry:
    """One event in one sink's lane."""

    __slots__ = ("attempts", "data", "queued_at", "size", "track")

    def __init__(self, track: _Track, data: Any, size: int, queued_at: float) -> None:
        self.track = track
        self.data = data
        self.size = size
        self.queued_at = queued_at
        self.attempts = 0


@dataclass(eq=False)
class _Lane:
    sink: Sink
    entries: deque[_Entry] = field(default_factory=deque)
    inflight: list[_Entry] = field(default_factory=list)
    #: a pipelined lane's sends in flight, oldest first: (batch, its ``sink.send`` task, ``backoffs`` when it left)
    sending: deque[tuple[list[_Entry], asyncio.Future[list[Outcome]], int]] = field(default_factory=deque)
    #: backoff pauses a pipelined lane has begun (a batch that left before the last one began fails from the
    #: outage that pause waited out: it is retried without another, growing pause)
    backoffs: int = 0
    wake: asyncio.Event | None = None
    failures: int = 0


@dataclass(eq=False)
class _Waiter:
    target: int
    event: threading.Event = field(default_factory=threading.Event)


@dataclass(eq=False)
class _Runtime:
    """Everything bound to one delivery thread; abandoned as a whole in a forked child."""

    loop: asyncio.AbstractEventLoop
    lanes: list[_Lane]
    thread: threading.Thread | None = None
    wake: asyncio.Event | None = None
    stop: asyncio.Event | None = None
    outstanding: dict[int, _Track] = field(default_factory=dict)
    low: int = 1  # every seq below this is settled (or still in the submit queue, see _check_waiters)
    routed_max: int = 0  # highest seq moved from the submit queue into ``outstanding``
    waiters: list[_Waiter] = field(default_factory=list)
    stopping: bool = False
    backlog: deque[_ReplayFile] = field(default_factory=deque)  # spool files to replay
    acks: list[Any] = field(default_factory=list)  # write-ahead records settled, acknowledged in one write
    close_by: float | None = None  # monotonic deadline for closing the sinks (set by shutdown)
    starting: bool = True  # holding forks (see _process.enter_hold) until the loop and the sinks started
    #: set (under ``report_lock``) once the loop ran for the last time: a report from another thread is then
    #: made on that thread (one scheduled on the loop after its last turn would be lost when it closes)
    reports_closed: bool = False
    report_lock: threading.Lock = field(default_factory=threading.Lock)


_ENGINES: weakref.WeakSet[DeliveryEngine] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for engine in list(_ENGINES):
        engine._reinit_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def exit_engines() -> list[DeliveryEngine]:
    """The live engines built with ``exit_hook=True`` (shut down by the process's exit work)."""
    return [e for e in list(_ENGINES) if e._exit_hook and not e._closed]


def shutdown_all(engines: Sequence[DeliveryEngine], remaining: Callable[[], float | None]) -> None:
    """Shut ``engines`` down concurrently, each within ``remaining()`` seconds (None: unbounded)."""
    live = [e for e in engines if not e._closed]
    if not live:
        return
    if len(live) == 1:
        live[0].shutdown(remaining())
        return
    threads = [
        threading.Thread(target=e.shutdown, args=(remaining(),), name="otel-commerce-exit", daemon=True) for e in live
    ]
    for t in threads:
        t.start()
    for t in threads:
        left = remaining()
        t.join(None if left is None else left + 1.0)


class DeliveryEngine:
    """Delivers submitted events to every sink from one background thread (see module docstring).

    ``submit`` never blocks and never raises. ``flush(timeout)`` returns True when every event
    submitted before the call was delivered to every sink that takes it, and no event since the
    previous flush was dropped or rejected. ``shutdown`` flushes within the deadline, then drops
    (counts) what is left and closes the sinks. An ``atexit`` hook shuts down engines left running.
    """

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        queue_size: int = _DEFAULT_QUEUE_SIZE,
        batch_size: int = _DEFAULT_BATCH_SIZE,
        batch_bytes: int = _DEFAULT_BATCH_BYTES,
        linger_seconds: float | None = _DEFAULT_LINGER_SECONDS,
        max_attempts: int = _DEFAULT_MAX_ATTEMPTS,
        max_age_seconds: float = _DEFAULT_MAX_AGE_SECONDS,
        backoff_initial_seconds: float = _DEFAULT_BACKOFF_INITIAL_SECONDS,
        backoff_max_seconds: float = _DEFAULT_BACKOFF_MAX_SECONDS,
        on_error: ErrorCallback | None = None,
        name: str = "otel-commerce",
        exit_hook: bool = True,
        spool: Any = None,
    ) -> None:
        if queue_size < 1 or batch_size < 1 or batch_bytes < 1 or max_attempts < 1:
            raise ValueError("queue_size, batch_size, batch_bytes and max_attempts must be >= 1")
        if linger_seconds is not None and linger_seconds < 0:
            raise ValueError("linger_seconds must not be negative (None: adaptive)")
        if max_age_seconds <= 0 or backoff_initial_seconds < 0 or backoff_max_seconds < 0:
            raise ValueError("linger, age and backoff durations must not be negative")
        self._sinks = list(sinks)
        for sink in self._sinks:  # sinks that care (JetStream: duplicate window) learn the age cap
            if hasattr(sink, "max_age_seconds"):
                sink.max_age_seconds = max_age_seconds
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._batch_bytes = batch_bytes
        self._linger = linger_seconds
        self._max_attempts = max_attempts
        self._max_age = max_age_seconds
        self._backoff_initial = backoff_initial_seconds
        self._backoff_max = backoff_max_seconds
        self._on_error = on_error
        self._name = name
        self._spool = spool  # an otel_commerce._delivery._spool.Spool (spill / wal) or None (off)
        self._wal = spool is not None and spool.mode == "wal"
        # wal mode, fsync none / grouped: the spool's lock is ours (its append runs under the lock submit takes
        # anyway: one lock per event); fsync always: appended outside our lock (an fsync per event, never
        # under the lock the delivery thread needs)
        self._wal_shared = self._wal and spool.fsync != "always"
        self._wal_locked: Callable[[Any], Any] | None = spool.append_locked if self._wal_shared else None
        self._wal_own: Callable[[Any], Any] | None = spool.append_item if self._wal and not self._wal_shared else None
        self._init_state()
        self._exit_hook = exit_hook  # False: not shut down at exit (the owner does it)
        _ENGINES.add(self)
        self._warm_sinks()

    def _init_state(self) -> None:
        self._warm_lock = threading.Lock()
        # Re-entrant: a signal handler may run exit work on a thread interrupted while holding it.
        # wal mode (fsync none / grouped): the spool's lock (see __init__), renewed with it after fork()
        self._lock = self._spool.shared_lock() if self._wal_shared else threading.RLock()
        self._queue: deque[_Track] = deque()
        self._overflow: deque[_Track] = deque()  # spool on: beyond the queue bound, spooled by the delivery thread
        self._last_spill = 0.0
        self._spool_warned_at = -_SPOOL_WARN_EVERY_SECONDS
        self._seq = 0
        self._idle = False
        self._wake_sent = False
        self._turn = threading.Event()  # set by the delivery thread each time it takes the queue (see _hand_off)
        self._turn_missed = False  # a hand-off timed out: none until the delivery thread takes the queue again
        self._closed = False
        self._shutdown_ok = True
        self._rt: _Runtime | None = None
        self._failed: list[int] = []
        self._stats: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        # set once the spool files adopted at start are queued (start_if_backlog): flush() waits for it
        self._replay_gate: threading.Event | None = None
        self._adopt_requested = False  # adopt_again(): the replayer looks for dead processes' files once more

    # ------------------------------------------------------------------ public API (any thread)
    @property
    def sinks(self) -> list[Sink]:
        return list(self._sinks)

    def submit(self, pending: Item) -> bool:
        """Queue ``pending`` for delivery; False when something had to be dropped (never blocks or raises)."""
        # The common case in a few steps (memory or spill mode, open, room in the queue, thread running); anything
        # else takes _submit, which checks everything again under the lock.
        if self._wal or self._closed:
            return self._submit(pending)
        try:
            queue = self._queue
            with self._lock:
                rt = self._rt
                if rt is None or self._closed or len(queue) >= self._queue_size:
                    handoff = None
                else:
                    seq = self._seq = self._seq + 1
                    queue.append(_Track(pending, seq, _monotonic()))
                    if self._idle and not self._wake_sent:
                        self._wake_sent = True
                        handoff = False
                    elif not self._turn_missed and len(queue) % _HANDOFF_EVERY == 0:  # woken or busy
                        handoff = True
                        self._turn.clear()
                    else:
                        return True
            if handoff is None or rt is None:
                return self._submit(pending)
            if handoff:
                self._hand_off(rt)
            else:
                with contextlib.suppress(RuntimeError):  # loop closed: shutdown raced us
                    rt.loop.call_soon_threadsafe(self._wake_intake, rt)
            return True
        except Exception:  # pragma: no cover - submit must never raise
            logger.exception("otel-commerce: submit failed")
            return False

    def _submit(self, pending: Item) -> bool:
        """``submit`` in every case (wal mode, closed, a full queue, the first event)."""
        try:
            if self._closed and _process.late_submit(self, pending):  # after shutdown (_runtime._late)
                return True
            overflow: _Track | None = None
            start = wake = handoff = False
            wal = wal_error = None
            append = self._wal_own
            if append is not None and not self._closed:  # wal mode, fsync always: appended before submit returns
                try:
                    wal = append(pending)
                except Exception as exc:
                    wal_error = exc
            with self._lock:
                closed = self._closed
                append = self._wal_locked
                if append is not None and not closed:  # wal mode: appended before submit returns (a mapping copy)
                    try:
                        wal = append(pending)
                    except Exception as exc:
                        wal_error = exc
                if closed:
                    self._stats["dropped"] += 1
                    self._stats["dropped.reason.shutdown"] = self._stats.get("dropped.reason.shutdown", 0) + 1
                else:
                    self._seq += 1
                    track = _Track(pending, self._seq, _monotonic(), wal)
                    if len(self._queue) >= self._queue_size and self._spool is not None:
                        self._overflow.append(track)  # to disk, on the delivery thread
                    elif len(self._queue) >= self._queue_size:
                        overflow = self._queue.popleft()
                        self._stats["dropped"] += 1
                        key = "dropped.reason.queue_full"
                        self._stats[key] = self._stats.get(key, 0) + 1
                        self._remember_failure(overflow.seq)
                        self._queue.append(track)
                    else:
                        self._queue.append(track)
                    rt = self._rt
                    if rt is None:
                        start = True
                    elif self._idle and not self._wake_sent:
                        self._wake_sent = wake = True
                    elif not self._turn_missed and len(self._queue) % _HANDOFF_EVERY == 0:  # woken or busy
                        handoff = True
                        self._turn.clear()
            if wal_error is not None and not closed:
                self._spool_warn(f"cannot append to the write-ahead spool ({wal_error}); the event is kept in memory only")
            if closed:  # reported outside the lock: on_error may do anything
                _metrics.count("dropped", reason="shutdown")
                self._report(PermanentDeliveryError("engine is shut down: event dropped"), pending, threadsafe=True)
                return False
            if handoff:
                self._hand_off(rt)
            if start:
                self._start()
            elif wake and rt is not None:
                with contextlib.suppress(RuntimeError):  # loop closed: shutdown raced us
                    rt.loop.call_soon_threadsafe(self._wake_intake, rt)
            if overflow is not None:
                _metrics.count("dropped", reason="queue_full")
                self._report(
                    PermanentDeliveryError("queue full: the oldest event was dropped"),
                    overflow.pending,
                    threadsafe=True,
                )
                return False
            return True
        except Exception:  # pragma: no cover - submit must never raise
            logger.exception("otel-commerce: submit failed")
            return False

    def _hand_off(self, rt: _Runtime | None) -> None:
        """Give the delivery thread its GIL turn: wait (at most ``_HANDOFF_SECONDS``) until it takes the queue.

        Called by ``submit`` every ``_HANDOFF_EVERY`` events queued while the delivery thread is busy. A thread
        waiting for the GIL gets it only after the interpreter's switch interval (5 ms): under a burst the
        delivery thread would otherwise send one batch per interval while the recording thread queues
        hundreds, and the server would store most of the burst after it ended. Not on the delivery thread
        itself; after a wait that timed out (a delivery thread busy elsewhere) no more until it takes the
        queue again, so a stalled delivery thread costs one wait, not one per ``_HANDOFF_EVERY`` events.
        """
        thread = rt.thread if rt is not None else None
        if thread is None or thread.ident == threading.get_ident():
            return
        if not self._turn.wait(_HANDOFF_SECONDS):
            self._turn_missed = True

    def flush(self, timeout_seconds: float | None = None) -> bool:
        """Wait until every event submitted so far is settled; True when all were delivered.

        Safe from any thread, also while the delivery thread is still starting (the events already
        queued are waited for, never reported delivered early).
        """
        rt = self._rt
        if rt is not None and threading.current_thread() is rt.thread:
            return False  # called from on_error on the delivery thread: cannot wait on ourselves
        gate = self._replay_gate
        if gate is not None and not gate.is_set():  # started for a spool backlog: its events count as submitted
            t0 = time.monotonic()
            if not gate.wait(timeout_seconds):
                return False
            if timeout_seconds is not None:
                timeout_seconds = max(timeout_seconds - (time.monotonic() - t0), 0.0)
        with self._lock:
            target = self._seq
            rt = self._rt
            start = rt is None and bool(self._queue) and not self._closed
        if start:  # a submit queued an event but has not started the thread yet: start it ourselves
            self._start()
            rt = self._rt
        done = True
        if rt is not None:
            waiter = _Waiter(target)
            try:
                rt.loop.call_soon_threadsafe(self._add_waiter, rt, waiter)
            except RuntimeError:  # the loop is closed
                done = not self._queue
            else:
                done = waiter.event.wait(timeout_seconds)
        elif self._queue:
            done = False  # shut down with events left: they were counted as dropped (or spooled)
        with self._lock:
            failed = any(s <= target for s in self._failed)
            if done:
                self._failed = [s for s in self._failed if s > target]
        return done and not failed

    def shutdown(self, timeout_seconds: float | None = None) -> bool:
        """Flush within ``timeout_seconds``, then drop (count, log at WARNING) what is left and close the sinks.

        At exit ``timeout_seconds`` is what is left of the exit deadline (``OTEL_COMMERCE_EXIT_TIMEOUT_MS``).
        """
        deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
        with self._lock:
            if self._closed:
                return self._shutdown_ok
            before = self._dropped_by_sink()
        ok = self.flush(timeout_seconds)
        with self._lock:
            self._closed = True
            self._shutdown_ok = ok
            rt = self._rt
        if rt is not None:
            if deadline is not None:
                rt.close_by = deadline
            with contextlib.suppress(RuntimeError):
                rt.loop.call_soon_threadsafe(self._begin_stop, rt)
            if rt.thread is not None and rt.thread is not threading.current_thread():
                remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0) + 0.5
                rt.thread.join(remaining)
        after = self._dropped_by_sink()
        lost = {name: n - before.get(name, 0) for name, n in after.items() if n > before.get(name, 0)}
        if lost:
            logger.warning(
                "otel-commerce: %s shut down with undelivered events (%s)%s; see stats() and on_error",
                self._name,
                ", ".join(f"{name}: {n}" for name, n in lost.items()),
                _process.exit_note(),
            )
        return ok

    def _dropped_by_sink(self) -> dict[str, int]:
        """Dropped events per sink (``"unrouted"``: dropped before reaching a sink)."""
        with self._lock:
            stats = self._stats
            out = {sink.name: stats.get(f"dropped.{sink.name}", 0) for sink in self._sinks}
            out["unrouted"] = stats.get("dropped", 0) - sum(out.values())
            return out

    def stats(self) -> dict[str, int]:
        """Counters: queued, submitted, exported, retried, dropped, rejected, and ``<counter>.<sink>``."""
        with self._lock:
            out = dict(self._stats)
            # every event submitted (never one dropped at a closed engine) or replayed got the next sequence number
            out["submitted"] = self._seq - out["replayed"]
            queued = len(self._queue) + len(self._overflow)
        rt = self._rt
        if rt is not None:
            queued += len(rt.outstanding)
        out["queued"] = queued
        for sink in self._sinks:
            for key in ("exported", "retried", "dropped", "rejected"):
                out.setdefault(f"{key}.{sink.name}", 0)
        return out

    # ------------------------------------------------------------------ thread / loop lifecycle
    def _warm_sinks(self) -> None:
        """Everything the delivery thread needs that imports modules or builds TLS contexts, done on the
        caller's thread (at construction, and again before a forked child's first start): a fork() never
        copies them half-done from another thread."""
        with self._warm_lock:
            for sink in self._sinks:
                warm = getattr(sink, "warm", None)
                if warm is not None:
                    try:
                        warm()
                    except Exception:
                        logger.debug("otel-commerce: warming sink %s failed", sink.name, exc_info=True)

    def _start(self) -> None:
        if self._rt is not None or self._closed:
            return
        self._warm_sinks()  # outside the engine lock: other threads' submit() never waits for it
        with self._lock:
            if self._rt is not None or self._closed:
                return
            loop = asyncio.new_event_loop()
            rt = _Runtime(loop=loop, lanes=[_Lane(sink) for sink in self._sinks])
            rt.thread = threading.Thread(
                target=self._thread_main, args=(rt,), name=f"{self._name}-delivery", daemon=True
            )
            self._rt = rt
            self._idle = False
            self._wake_sent = False
            _process.enter_hold()  # forks wait (bounded) until the thread has started its loop and sinks
        try:
            rt.thread.start()
        except BaseException:
            self._end_start_up(rt)
            raise
        _process.run_start_hooks()

    def _end_start_up(self, rt: _Runtime) -> None:
        if rt.starting:
            rt.starting = False
            _process.leave_hold()

    def _thread_main(self, rt: _Runtime) -> None:
        pid = os.getpid()
        try:
            asyncio.set_event_loop(rt.loop)
            # Our own nats / httpx calls must never be traced (nor recurse into our processor).
            ctx = otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True)
            ctx = otel_context.set_value(otel_context._SUPPRESS_HTTP_INSTRUMENTATION_KEY, True, ctx)
            otel_context.attach(ctx)
            rt.loop.run_until_complete(self._main(rt))
        except BaseException:  # pragma: no cover
            logger.exception("otel-commerce: the delivery loop failed")
        finally:
            self._end_start_up(rt)
            gate = self._replay_gate
            if gate is not None and os.getpid() == pid:
                gate.set()  # never leave a flush() waiting on a loop that ended
            if os.getpid() == pid:
                with contextlib.suppress(Exception):
                    _finish_tasks(rt.loop)
                with rt.report_lock:  # later reports from other threads run on their thread (see _report)
                    rt.reports_closed = True
                with contextlib.suppress(Exception):  # the reports scheduled until now: one more turn runs them
                    rt.loop.run_until_complete(asyncio.sleep(0))
                with contextlib.suppress(Exception):
                    rt.loop.close()

    async def _main(self, rt: _Runtime) -> None:
        rt.wake = asyncio.Event()
        rt.stop = asyncio.Event()
        for lane in rt.lanes:
            lane.wake = asyncio.Event()
        # Each lane starts its own sink: one that cannot start never blocks or starves another.
        started = [asyncio.Event() for _ in rt.lanes]
        tasks = [asyncio.ensure_future(self._intake(rt))]
        tasks += [
            asyncio.ensure_future(self._lane_loop(rt, lane, ev)) for lane, ev in zip(rt.lanes, started, strict=True)
        ]
        if self._spool is not None:
            tasks.append(asyncio.ensure_future(self._spool_replayer(rt)))
        if started:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(ev.wait() for ev in started)), _process.FORK_HOLD_SECONDS)
        self._end_start_up(rt)
        await rt.stop.wait()
        rt.stopping = True
        if self._replay_gate is not None:
            self._replay_gate.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._drop_everything(rt)
        if self._spool is not None:
            self._spool_close(rt)
        close_by = rt.close_by
        budget = _SINK_CLOSE_SECONDS if close_by is None else min(_SINK_CLOSE_SECONDS, close_by - time.monotonic())
        results = await asyncio.gather(
            *(asyncio.wait_for(lane.sink.close(), max(budget, 0.05)) for lane in rt.lanes), return_exceptions=True
        )
        for lane, result in zip(rt.lanes, results, strict=True):
            if isinstance(result, BaseException):
                logger.debug("otel-commerce: closing sink %s failed: %r", lane.sink.name, result)
        self._check_waiters(rt)

    async def _start_sink(self, lane: _Lane, started: asyncio.Event) -> None:
        """Start the lane's sink, retrying with backoff while ``start()`` raises."""
        failures = 0
        while True:
            try:
                await lane.sink.start()
                if failures:
                    _log.recovered(lane.sink.name)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                logger.debug("otel-commerce: cannot start sink %s", lane.sink.name, exc_info=True)
                # WARNING at once, then rate-limited summaries (otel_commerce._log)
                _log.failure(lane.sink.name, "cannot start", _log.cause_of(exc), outage=True)
                started.set()  # start-up is over for this lane (forks need not wait for it)
                await asyncio.sleep(
                    backoff_seconds(failures, _START_BACKOFF_INITIAL_SECONDS, _START_BACKOFF_MAX_SECONDS)
                )
            finally:
                started.set()

    def _begin_stop(self, rt: _Runtime) -> None:
        if rt.stop is not None:
            rt.stop.set()

    def _wake_intake(self, rt: _Runtime) -> None:
        if rt.wake is not None:
            rt.wake.set()

    def _reinit_after_fork(self) -> None:
        """In a forked child: abandon the parent's loop, sockets and queue; new locks; start afresh."""
        abandon((self._rt, self._queue, self._overflow, self._lock))
        closed = self._closed
        self._init_state()
        self._closed = closed
        for sink in self._sinks:
            try:
                sink.forget()
            except Exception:  # pragma: no cover
                logger.debug("otel-commerce: sink %s cannot forget its state", sink.name, exc_info=True)

    # ------------------------------------------------------------------ loop side
    async def _intake(self, rt: _Runtime) -> None:
        assert rt.wake is not None
        while True:
            with self._lock:
                over: list[_Track] = []
                if self._queue or self._overflow:
                    items = list(self._queue)
                    self._queue.clear()
                    over = list(self._overflow)
                    self._overflow.clear()
                    self._idle = False
                    self._turn_missed = False
                    self._turn.set()
                else:
                    items = []
                    self._idle = True
                    self._wake_sent = False
                    rt.wake.clear()
            if not items and not over:
                await rt.wake.wait()
                continue
            rt.outstanding.update(zip(map(_SEQ, items), items, strict=True))
            if over:
                rt.outstanding.update(zip(map(_SEQ, over), over, strict=True))
            rt.routed_max = max(items[-1].seq if items else 0, over[-1].seq if over else 0)
            if over:
                self._spool_tracks(rt, over, "queue_full")
            for i in range(0, len(items), _ROUTE_CHUNK):
                if i:
                    await asyncio.sleep(0)  # let acks and responses through during a large burst
                self._route_all(rt, items[i : i + _ROUTE_CHUNK] if len(items) > _ROUTE_CHUNK else items)
            if rt.waiters:
                self._check_waiters(rt)

    def _route_all(self, rt: _Runtime, tracks: list[_Track]) -> None:
        """Prepare each event for every sink that takes it and queue it in the sinks' lanes."""
        now = time.monotonic()
        lanes = rt.lanes
        limit = self._queue_size
        routes = [(lane, lane.sink.name, lane.sink.prepare, lane.entries) for lane in lanes]  # looked up once
        lane1, name1, prepare1, entries1 = routes[0] if len(routes) == 1 else (None, "", None, deque())
        for track in tracks:
            pending = track.pending
            only = track.only
            if prepare1 is not None and only is None and len(entries1) < limit:  # one sink, room in its lane
                try:
                    prepared = prepare1(pending)
                except Exception as exc:
                    assert lane1 is not None
                    self._unencodable(rt, lane1, name1, track, exc, now)
                else:
                    if prepared is not None:
                        track.remaining += 1
                        entries1.append(_Entry(track, prepared[0], prepared[1], now))
                        continue
            else:
                for lane, name, prepare, entries in routes:
                    if only is not None and name not in only:
                        continue
                    try:
                        prepared = prepare(pending)
                    except Exception as exc:
                        self._unencodable(rt, lane, name, track, exc, now)
                        continue
                    if prepared is None:
                        continue
                    data, size = prepared
                    track.remaining += 1
                    if len(entries) >= limit:
                        if self._spool is not None:
                            self._spool_entries(rt, lane, [_Entry(track, data, size, now)], "queue_full")
                            continue
                        old = entries.popleft()
                        err = PermanentDeliveryError("sink queue full")
                        self._settle(rt, lane, [old], "dropped", "queue_full", err)
                    entries.append(_Entry(track, data, size, now))
            if track.remaining == 0 and track.seq in rt.outstanding:
                if track.failed or only is not None:  # (a replayed event no sink takes any more: settled)
                    self._finish(rt, track)
                else:
                    err = PermanentDeliveryError("no sink takes this event")
                    self._fail_unrouted(rt, track, "dropped", "no_sink", err)
        for lane in lanes:  # the lanes run once this returns (same loop): one wake-up each
            if lane.entries and lane.wake is not None and not lane.wake.is_set():
                lane.wake.set()

    def _unencodable(self, rt: _Runtime, lane: _Lane, name: str, track: _Track, exc: Exception, now: float) -> None:
        """A sink's ``prepare`` raised: the event is rejected for that sink (``invalid``)."""
        err: BaseException = exc
        if not isinstance(exc, DeliveryError):
            err = PermanentDeliveryError(f"{name}: cannot encode the event: {exc}")
            err.__cause__ = exc
        track.remaining += 1
        self._settle(rt, lane, [_Entry(track, None, 0, now)], "rejected", "invalid", err)

    def _fail_unrouted(self, rt: _Runtime, track: _Track, kind: str, reason: str, exc: BaseException) -> None:
        self._bump((kind, 1), (f"{kind}.reason.{reason}", 1))
        _metrics.count(kind, reason=reason)
        track.failed = True
        self._report(exc, track.pending)
        self._finish(rt, track)
        if rt.waiters:
            self._check_waiters(rt)

    async def _lane_loop(self, rt: _Runtime, lane: _Lane, started: asyncio.Event) -> None:
        assert lane.wake is not None
        sink = lane.sink
        await self._start_sink(lane, started)
        depth = getattr(sink, "max_concurrent_sends", 1)
        if isinstance(depth, int) and depth > 1:
            await self._pipelined_lane_loop(rt, lane, depth)
            return
        while True:
            if not await self._lane_has_work(rt, lane):
                continue
            await self._wait_for_batch(rt, lane)
            batch = self._take(lane)
            lane.inflight = batch
            try:
                outcomes = await sink.send(list(map(_DATA, batch)))
                if len(outcomes) != len(batch):
                    raise RuntimeError(f"sink {sink.name} returned {len(outcomes)} outcomes for {len(batch)} items")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.debug("otel-commerce: sink %s failed", sink.name, exc_info=True)
                outcomes = [TransientDeliveryError(f"{sink.name}: {type(exc).__name__}: {exc}")] * len(batch)
            lane.inflight = []
            delay = await self._settle_batch(rt, lane, batch, outcomes)
            if delay is not None:
                await asyncio.sleep(delay)  # cancelled by shutdown

    async def _pipelined_lane_loop(self, rt: _Runtime, lane: _Lane, depth: int) -> None:
        """The lane loop of a sink that takes up to ``depth`` sends at once (JetStream: acks matched by counter).

        While the lane keeps up it is the one-send loop: a batch leaves when the lane is idle and what arrives
        meanwhile waits for it. Only while a *full* batch is waiting does another send start beside the ones
        in flight (up to ``depth``): under a burst the server holds the next batches instead of idling for a
        round trip (and for the recording thread's GIL turn) between two. Outcomes are settled in the order
        the batches left; a retried batch goes back to the front of the lane. One outage fails every send in
        flight: the lane backs off once for them (the first to be settled), not once per batch with a growing
        pause each (four in flight would wait 1 + 2 + 4 + 8 backoff units before resuming).
        """
        assert lane.wake is not None
        sink = lane.sink
        sending = lane.sending
        try:
            while True:
                if sending and (len(sending) >= depth or len(lane.entries) < self._batch_size or not sink.ready()):
                    batch, task, left_at = sending[0]
                    try:
                        outcomes = await task
                        if len(outcomes) != len(batch):
                            raise RuntimeError(
                                f"sink {sink.name} returned {len(outcomes)} outcomes for {len(batch)} items"
                            )
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        logger.debug("otel-commerce: sink %s failed", sink.name, exc_info=True)
                        outcomes = [TransientDeliveryError(f"{sink.name}: {type(exc).__name__}: {exc}")] * len(batch)
                    sending.popleft()
                    failures = lane.failures
                    delay = await self._settle_batch(rt, lane, batch, outcomes)
                    if delay is not None and lane.backoffs > left_at:
                        # it left before the last pause began: the failure that pause waited out, counted once
                        lane.failures = failures
                        delay = None
                    if delay is not None:
                        lane.backoffs += 1
                        await asyncio.sleep(delay)  # cancelled by shutdown
                    continue
                if not await self._lane_has_work(rt, lane):  # (nothing in flight here)
                    continue
                if not sending:
                    await self._wait_for_batch(rt, lane)
                batch = self._take(lane)
                sending.append((batch, asyncio.ensure_future(sink.send(list(map(_DATA, batch)))), lane.backoffs))
        finally:  # shutdown: the batches stay in lane.sending (dropped or spooled with the lane)
            for _, task, _ in sending:
                if not task.done():
                    task.cancel()
                elif not task.cancelled():
                    task.exception()  # retrieved: no "never retrieved" at exit

    async def _lane_has_work(self, rt: _Runtime, lane: _Lane) -> bool:
        """True when the lane holds entries its sink can take now; else waits (for entries, or a poll interval
        for the sink to become ready) and returns False: look again. Expired entries are dropped first."""
        assert lane.wake is not None
        if not lane.entries:
            lane.wake.clear()
            await lane.wake.wait()
            return False
        self._expire(rt, lane)
        if not lane.entries:
            return False
        if not lane.sink.ready():
            await self._wait_ready(lane)
            return False
        return True

    async def _wait_ready(self, lane: _Lane) -> None:
        """Wait (a poll interval at most) for the lane's sink to become ready; summaries of the outage."""
        sink = lane.sink
        cause = getattr(sink, "last_error", "")  # the sink logged the first failure: add summaries
        if cause:
            _log.failure(sink.name, "unreachable", cause, count=0, waiting=len(lane.entries), outage=True)
        t0 = time.monotonic()
        if not await sink.wait_ready(_READY_POLL_SECONDS):
            left = _READY_POLL_SECONDS - (time.monotonic() - t0)
            if left > 0:  # a sink that answers at once must not make this lane spin
                await asyncio.sleep(left)

    async def _wait_for_batch(self, rt: _Runtime, lane: _Lane) -> None:
        """Wait (at most ``linger_seconds`` from the oldest entry) for a fuller batch.

        Adaptive (``linger_seconds=None``, the default): no wait. A lane sends one batch at a time, so the lane
        is idle here: the batch leaves at once, and whatever arrives while it is in flight makes up the next
        one (up to ``batch_size``): batches grow with the load, latency stays one round trip when idle. Only
        events already submitted but not yet routed by the intake are let in first (one loop turn).
        """
        assert lane.wake is not None
        linger = self._linger
        if linger is None:
            if self._queue and len(lane.entries) < self._batch_size:
                await asyncio.sleep(0)  # the intake routes what was submitted meanwhile (one turn, no timer)
            return
        if linger <= 0:
            return
        while len(lane.entries) < self._batch_size and not rt.waiters and lane.entries[0].attempts == 0:
            left = lane.entries[0].queued_at + linger - time.monotonic()
            if left <= 0:
                return
            lane.wake.clear()
            try:
                await asyncio.wait_for(lane.wake.wait(), left)
            except asyncio.TimeoutError:
                return

    def _take(self, lane: _Lane) -> list[_Entry]:
        """The next batch: up to ``batch_size`` entries and ``batch_bytes`` bytes (at least one entry)."""
        entries = lane.entries
        n = len(entries)
        if n <= self._batch_size:  # all of them (a burst's tail, an idle lane)
            batch = list(entries)
            entries.clear()
        else:  # the first batch_size: one C-level pass each way
            batch = list(islice(entries, self._batch_size))
            _consume(starmap(entries.popleft, repeat((), self._batch_size)))
        if sum(map(_SIZE, batch)) > self._batch_bytes:  # rare: give back what is over the byte limit
            size = 0
            for i, entry in enumerate(batch):
                size += entry.size
                if i and size > self._batch_bytes:
                    entries.extendleft(reversed(batch[i:]))
                    del batch[i:]
                    break
        return batch

    def _expire(self, rt: _Runtime, lane: _Lane) -> None:
        limit = time.monotonic() - self._max_age
        expired: list[_Entry] = []
        while lane.entries and lane.entries[0].track.t0 < limit:
            expired.append(lane.entries.popleft())
        if expired and self._spool is not None:
            self._spool_entries(rt, lane, expired, "max_age")
        elif expired:
            self._settle(rt, lane, expired, "dropped", "max_age", TransientDeliveryError("event too old to retry"))

    async def _settle_batch(
        self, rt: _Runtime, lane: _Lane, batch: list[_Entry], outcomes: Sequence[DeliveryError | None]
    ) -> float | None:
        """Settle a sent batch; returns the pause before the next attempt when something is retried."""
        if outcomes.count(None) == len(batch):  # all delivered (the usual case)
            self._settle(rt, lane, batch, "exported", None, None)
            _log.recovered(lane.sink.name)
            lane.failures = 0
            return None
        delivered: list[_Entry] = []
        retry: list[_Entry] = []
        retry_after: float | None = None
        now = time.monotonic()
        for entry, outcome in zip(batch, outcomes, strict=True):
            if outcome is None:
                delivered.append(entry)
            elif isinstance(outcome, TransientDeliveryError):
                throttled = is_throttle(outcome.status, outcome.retry_after)
                if not throttled:  # an obeyed throttle is waited out, bounded by the age cap only
                    entry.attempts += 1
                if entry.attempts >= self._max_attempts or now - entry.track.t0 >= self._max_age:
                    reason = "max_attempts" if entry.attempts >= self._max_attempts else "max_age"
                    if self._spool is not None:
                        self._spool_entries(rt, lane, [entry], reason)
                    else:
                        self._settle(rt, lane, [entry], "dropped", reason, outcome)
                else:
                    retry.append(entry)
                    if outcome.retry_after is not None:
                        retry_after = max(retry_after or 0.0, outcome.retry_after)
            else:
                self._settle(rt, lane, [entry], "rejected", _reason(outcome), outcome)
        if delivered:
            self._settle(rt, lane, delivered, "exported", None, None)
            _log.recovered(lane.sink.name)
        if retry:
            first = next(o for o in outcomes if isinstance(o, TransientDeliveryError))
            waiting = len(lane.entries) + len(retry)
            reason = "throttled" if is_throttle(first.status, first.retry_after) else "unreachable"
            _log.failure(lane.sink.name, reason, first, count=len(retry), waiting=waiting, outage=True)
        if not retry:
            lane.failures = 0
            return None
        lane.entries.extendleft(reversed(retry))
        name = lane.sink.name
        self._bump(("retried", len(retry)), (f"retried.{name}", len(retry)))
        _metrics.count("retried", len(retry), sink=name)
        lane.failures += 1
        return retry_delay_seconds(lane.failures, self._backoff_initial, self._backoff_max, retry_after)

    def _settle(
        self,
        rt: _Runtime,
        lane: _Lane,
        entries: list[_Entry],
        kind: str,
        reason: str | None,
        error: BaseException | None,
    ) -> None:
        n = len(entries)
        name = lane.sink.name
        self._bump((kind, n), (f"{kind}.{name}", n), (f"{kind}.reason.{reason}" if reason else "", n))
        _metrics.count(kind, n, sink=name, reason=reason)
        failed = kind != "exported"
        if failed and kind != "spooled":
            _log.failure(name, f"{kind} ({reason})", f"{n} event(s): {error}", count=n, waiting=len(lane.entries))
        if not failed:  # delivered: an event settled everywhere with no write-ahead record or replay file is done
            outstanding = rt.outstanding
            for entry in entries:
                track = entry.track
                track.remaining -= 1
                if track.remaining <= 0:
                    if track.wal is None and track.source is None and not track.failed:
                        outstanding.pop(track.seq, None)
                    else:
                        self._finish(rt, track)
        else:
            for entry in entries:
                track = entry.track
                track.failed = True
                if error is not None:
                    self._report(error, track.pending)
                track.remaining -= 1
                if track.remaining <= 0:
                    self._finish(rt, track)
        if rt.acks:
            self._spool_ack(rt)
        if rt.waiters:
            self._check_waiters(rt)

    def _finish(self, rt: _Runtime, track: _Track) -> None:
        if rt.outstanding.pop(track.seq, None) is None:
            return
        if track.wal is not None:
            rt.acks.append(track.wal)
        source = track.source
        if source is not None:
            source.remaining -= 1
            if source.remaining <= 0 and source.records is None and self._spool is not None:
                self._spool.finished(source.path)
        if track.failed:
            with self._lock:
                self._remember_failure(track.seq)

    def _add_waiter(self, rt: _Runtime, waiter: _Waiter) -> None:
        rt.waiters.append(waiter)
        for lane in rt.lanes:  # stop lingering: a flush wants the batches now
            if lane.wake is not None:
                lane.wake.set()
        self._check_waiters(rt)

    def _check_waiters(self, rt: _Runtime) -> None:
        """Release the flush waiters whose events are all settled (amortised O(1) per event)."""
        outstanding = rt.outstanding
        low = rt.low
        while low <= rt.routed_max and low not in outstanding:
            low += 1
        rt.low = low
        if low > rt.routed_max:  # everything routed is settled: the next unsettled one is still queued
            with self._lock:
                low = (
                    self._queue[0].seq if self._queue else (self._overflow[0].seq if self._overflow else self._seq + 1)
                )
        keep = []
        for waiter in rt.waiters:
            if waiter.target < low:
                waiter.event.set()
            else:
                keep.append(waiter)
        rt.waiters = keep

    def _drop_everything(self, rt: _Runtime) -> None:
        """At the end of shutdown: count every event still queued or in a lane as dropped."""
        err = TransientDeliveryError("shut down before delivery")
        for lane in rt.lanes:
            left = [*lane.inflight]
            for batch, task, _ in lane.sending:  # a send that finished behind a slower one: its outcomes stand
                left += self._settle_finished(rt, lane, batch, task)
            left += lane.entries
            lane.inflight = []
            lane.sending.clear()
            lane.entries.clear()
            if left and self._spool is not None:
                self._spool_entries(rt, lane, left, "shutdown")
            elif left:
                self._settle(rt, lane, left, "dropped", "shutdown", err)
        with self._lock:
            queued = [*self._queue, *self._overflow]
            self._queue.clear()
            self._overflow.clear()
        left_tracks = [*rt.outstanding.values(), *queued]
        for track in left_tracks:
            rt.outstanding.setdefault(track.seq, track)
        if self._spool is not None and left_tracks:
            self._spool_tracks(rt, left_tracks, "shutdown")
            return
        for track in left_tracks:
            self._fail_unrouted(rt, track, "dropped", "shutdown", err)

    def _settle_finished(
        self, rt: _Runtime, lane: _Lane, batch: list[_Entry], task: asyncio.Future[list[Outcome]]
    ) -> list[_Entry]:
        """At shutdown, a pipelined lane's batch still in ``lane.sending``: when its send has finished (acks in,
        the lane loop had not settled it yet: it waits in send order behind a slower one), the acknowledged
        events are exported and the permanently refused ones rejected — never reported undelivered; returns
        the entries left for the drop/spool (all of them when the send had not finished)."""
        if not task.done() or task.cancelled() or task.exception() is not None:
            return batch
        outcomes = task.result()
        if len(outcomes) != len(batch):
            return batch
        delivered = [entry for entry, outcome in zip(batch, outcomes, strict=True) if outcome is None]
        if delivered:
            self._settle(rt, lane, delivered, "exported", None, None)
        left: list[_Entry] = []
        for entry, outcome in zip(batch, outcomes, strict=True):
            if outcome is None:
                continue
            if isinstance(outcome, DeliveryError) and not isinstance(outcome, TransientDeliveryError):
                self._settle(rt, lane, [entry], "rejected", _reason(outcome), outcome)
            else:
                left.append(entry)
        return left

    # ------------------------------------------------------------------ spool (otel_commerce._delivery._spool)
    def _spool_warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._spool_warned_at >= _SPOOL_WARN_EVERY_SECONDS:
            self._spool_warned_at = now
            logger.warning("otel-commerce: %s", message)

    def _spool_write(self, tracks: Sequence[_Track], sinks: Sequence[str] | None) -> bool:
        try:
            self._spool.spill([self._spool.encode(t.pending) for t in tracks], sinks)
        except Exception as exc:
            self._spool_warn(f"cannot write {len(tracks)} event(s) to the spool: {exc}")
            return False
        self._last_spill = time.monotonic()
        return True

    def _spool_entries(self, rt: _Runtime, lane: _Lane, entries: list[_Entry], reason: str) -> None:
        """Spool events one sink could not deliver now (its name is stored: the replay goes there only)."""
        name = lane.sink.name
        if not self._spool_write([e.track for e in entries], [name]):
            self._settle(rt, lane, entries, "dropped", reason, TransientDeliveryError(f"spool failed ({reason})"))
            return
        self._spool_warn(f"{len(entries)} event(s) for {name} spooled to disk ({reason}); replayed when it recovers")
        self._settle(rt, lane, entries, "spooled", reason, None)

    def _spool_tracks(self, rt: _Runtime, tracks: list[_Track], reason: str) -> None:
        """Spool events not yet routed (queue overflow, exit): owed to every sink (or ``only``)."""
        ok = (
            self._spool_write(tracks, None)
            if all(t.only is None for t in tracks)
            else all(self._spool_write([t], sorted(t.only) if t.only is not None else None) for t in tracks)
        )
        if not ok:
            for track in tracks:
                self._fail_unrouted(rt, track, "dropped", reason, TransientDeliveryError(f"spool failed ({reason})"))
            return
        self._bump(("spooled", len(tracks)), (f"spooled.reason.{reason}", len(tracks)))
        _metrics.count("spooled", len(tracks), reason=reason)
        for track in tracks:
            track.failed = True  # not delivered now: flush() reports it; never an on_error (not lost)
            self._finish(rt, track)
        if rt.acks:
            self._spool_ack(rt)
        if rt.waiters:
            self._check_waiters(rt)

    def _spool_ack(self, rt: _Runtime) -> None:
        acks, rt.acks = rt.acks, []
        try:
            self._spool.ack(acks)
        except Exception as exc:
            self._spool_warn(f"cannot acknowledge write-ahead records: {exc}")

    def _spool_can_replay(self, rt: _Runtime) -> bool:
        low = max(self._queue_size // 2, 1)
        with self._lock:
            if len(self._queue) + len(self._overflow) >= low:
                return False
        return all(lane.sink.ready() and len(lane.entries) < low for lane in rt.lanes)

    async def _spool_replayer(self, rt: _Runtime) -> None:
        """Adopt dead processes' files at start; replay them, and our own spill once the sinks recover."""
        spool = self._spool
        try:
            for path in spool.adopt():
                rt.backlog.append(_ReplayFile(path))
        except Exception as exc:
            self._spool_warn(f"cannot adopt spool files: {exc}")
        adopted_at = time.monotonic()
        while True:
            if self._adopt_requested:  # adopt_again(): before the gate check, so flush() waits for these too
                self._adopt_requested = False
                try:
                    rt.backlog.extend(_ReplayFile(path) for path in spool.adopt())
                except Exception as exc:
                    self._spool_warn(f"cannot adopt spool files: {exc}")
                adopted_at = time.monotonic()
            gate = self._replay_gate
            if gate is not None and not gate.is_set():
                if not rt.backlog:
                    gate.set()  # the adopted files are queued: flush() targets them now
                elif time.monotonic() - adopted_at >= self._max_age:
                    # not queued within max_age (a sink is unreachable): flush() gives up on them as on a
                    # submitted event (False); they stay on disk and are replayed when the sinks recover
                    with self._lock:
                        self._remember_failure(self._seq)
                    gate.set()
            try:
                quiet = time.monotonic() - self._last_spill >= _SPOOL_REPLAY_DELAY_SECONDS
                if not rt.backlog and spool.spilled_pending and quiet and self._spool_can_replay(rt):
                    rt.backlog.extend(_ReplayFile(path) for path in spool.take_spilled())
                if rt.backlog and self._spool_can_replay(rt):
                    self._spool_feed(rt, rt.backlog[0])
                    await asyncio.sleep(0)
                    continue
            except Exception:  # pragma: no cover - never let the replayer die silently
                logger.exception("otel-commerce: spool replay failed; retrying")
            await asyncio.sleep(_SPOOL_TICK_SECONDS)

    def _spool_feed(self, rt: _Runtime, rf: _ReplayFile) -> None:
        """Queue the next chunk of a replayed file (seq numbers as if submitted: flush waits for them)."""
        if rf.records is None:
            try:
                rf.records = self._spool.read(rf.path).records
            except OSError as exc:
                self._spool_warn(f"cannot read spool file {rf.path}: {exc}")
                rf.records = []
        chunk = rf.records[rf.pos : rf.pos + self._batch_size]
        rf.pos += len(chunk)
        now = time.monotonic()
        tracks = []
        for payload, sinks in chunk:
            try:
                pending = self._spool.decode(payload)
            except Exception as exc:
                self._spool_warn(f"a spooled event cannot be decoded and is skipped: {exc}")
                self._bump(("rejected", 1), ("rejected.reason.spool_decode", 1))
                continue
            pending.via = "spool"
            tracks.append((pending, sinks))
        with self._lock:
            for pending, sinks in tracks:
                self._seq += 1
                track = _Track(pending, self._seq, now)
                track.only = frozenset(sinks) if sinks is not None else None
                track.source = rf
                rf.remaining += 1
                self._queue.append(track)
            self._stats["replayed"] += len(tracks)
            wake = self._idle and not self._wake_sent
            if wake:
                self._wake_sent = True
        if rf.pos >= len(rf.records):
            rt.backlog.popleft()
            rf.records = None
            if rf.remaining <= 0:
                self._spool.finished(rf.path)
        if wake:
            self._wake_intake(rt)

    def _spool_close(self, rt: _Runtime) -> None:
        """At the end of shutdown: unread replay records go back to disk; acknowledge; close the files."""
        for rf in list(rt.backlog):
            if rf.records is not None:
                rest = rf.records[rf.pos :]
                try:
                    for payload, sinks in rest:
                        self._spool.spill([orjson.dumps(payload)], sinks)
                except Exception as exc:
                    self._spool_warn(f"cannot re-spool {len(rest)} replayed event(s): {exc}")
                    continue
                rf.records = None
                if rf.remaining <= 0:
                    self._spool.finished(rf.path)
        rt.backlog.clear()
        if rt.acks:
            self._spool_ack(rt)
        try:
            self._spool.close()
        except Exception:
            logger.debug("otel-commerce: closing the spool failed", exc_info=True)

    def replay_spool(self) -> None:
        """Start the engine now (it adopts dead processes' spool files and replays them; also at first use)."""
        self._start()

    def start_if_backlog(self) -> bool:
        """Start now (adopt and replay) when the spool holds files of dead processes for these sinks; else stay
        lazy (no thread until the first event). ``flush()`` then waits until the adopted events are queued (and
        settles them like submitted ones). True when it started."""
        spool = self._spool
        if spool is None or self._rt is not None or self._closed:
            return False
        try:
            if not spool.has_backlog():
                return False
        except Exception:
            logger.debug("otel-commerce: cannot look for a spool backlog", exc_info=True)
            return False
        self._replay_gate = threading.Event()
        self._start()
        return True

    def adopt_again(self) -> None:
        """Look for spool files of this key without a live owner once more, and replay them.

        For an engine that replaced another in this process (``configure()`` called again): what the old
        engine spilled at its shutdown has no live owner any more, and would otherwise wait for the next
        process start. Not started yet: starts only if there is such a backlog (:meth:`start_if_backlog`).
        """
        if self._spool is None or self._closed:
            return
        if self._rt is None:
            self.start_if_backlog()
        else:
            self._replay_gate = threading.Event()  # flush() waits until what is adopted is queued
            self._adopt_requested = True

    @property
    def spool(self) -> Any:
        """The engine's ``otel_commerce._delivery._spool.Spool`` (None when the spool is off)."""
        return self._spool

    # ------------------------------------------------------------------ helpers
    def _bump(self, *updates: tuple[str, int]) -> None:
        with self._lock:
            stats = self._stats
            for key, n in updates:
                if key:
                    stats[key] = stats.get(key, 0) + n

    def _remember_failure(self, seq: int) -> None:
        """Called with the lock held."""
        failed = self._failed
        failed.append(seq)
        if len(failed) > _MAX_REMEMBERED_FAILURES:  # keep the oldest: a flush only asks "any <= target?"
            failed.sort()
            del failed[_MAX_REMEMBERED_FAILURES // 2 :]

    def _report(self, error: BaseException, pending: Item | None, *, threadsafe: bool = False) -> None:
        callback = self._on_error
        if callback is None:
            return
        rt = self._rt
        if threadsafe and rt is not None and threading.current_thread() is not rt.thread:
            with rt.report_lock:  # scheduled only while the loop has a turn left to run it
                if not rt.reports_closed:
                    try:
                        rt.loop.call_soon_threadsafe(self._report, error, pending)
                        return
                    except RuntimeError:
                        pass
        try:
            callback(error, pending)
        except Exception:
            logger.exception("otel-commerce: on_error callback failed")


def _finish_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Before closing the delivery loop: cancel and await what is left on it (as ``asyncio.run`` does).

    A client library's ``close()`` may cancel its own tasks without awaiting them (nats-py's reader, flusher
    and subscription tasks): closing the loop under them prints "Task was destroyed but it is pending!" and
    "Event loop is closed" tracebacks at exit. Bounded: a task that ignores its cancellation is left.
    """
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.wait(tasks, timeout=_SINK_CLOSE_SECONDS))
        for task in tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: never "Task exception was never retrieved" at exit
    loop.run_until_complete(loop.shutdown_asyncgens())


def _reason(error: DeliveryError) -> str:
    if error.status is not None:
        return f"http_{error.status}" if 100 <= error.status < 600 else f"status_{error.status}"
    return "rejected"
