"""Transaction-safe recording: events held until their transaction commits, discarded when it does not.

An event is recorded (validated, ``event_id`` / timestamp / trace ids fixed: ``build_pending``) at once,
but *emitted* — the OTel log record other exporters see, and the hand-off to delivery — only when the
transaction holding it is released. Holders:

- ``with otel_commerce.transaction():`` — a block in a ``ContextVar`` (threads and asyncio tasks are
  isolated); nested blocks release into the enclosing one; an exception discards
  (``discarded{reason=rollback}``);
- database transactions (``on_commit=``), through the *resolvers* the integrations register
  (``otel_commerce.sqlalchemy``, ``otel_commerce.django``): this layer knows no database library.

At release the record is emitted with its recorded timestamp and in its recorded span context (the
span itself while it is still recording, else a ``NonRecordingSpan`` of its ``SpanContext``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan

from .._delivery import _metrics
from .._errors import EventValidationError
from .._model import Pending
from .._otel import _slot

__all__ = [
    "NOW",
    "Held",
    "Holder",
    "Resolver",
    "Transaction",
    "discard",
    "hold",
    "holder_for",
    "register_resolver",
    "release",
    "transaction",
]

logger = logging.getLogger("otel_commerce")


@dataclass(slots=True)
class Held:
    """One recorded event waiting for its transaction, with the OTel context it was recorded in."""

    pending: Pending
    context: Context


class Holder(Protocol):
    """Something that keeps held events until its transaction ends (``transaction()``, a DB transaction)."""

    def hold(self, item: Held) -> None: ...


class _Now:
    """A resolver's answer: "this is my kind of target, but no transaction is in progress: emit now"."""

    def __repr__(self) -> str:
        return "NOW"


NOW = _Now()

#: ``resolver(target)`` → a :class:`Holder`, :data:`NOW` (recognised, nothing in progress), or None (not
#: mine / nothing of mine in progress). ``target`` is ``True`` (any transaction in progress here), ``None``
#: (no per-call choice: the resolver applies its own global setting) or an object the caller named (a
#: session, a database alias).
Resolver = Callable[[object], "Holder | _Now | None"]

_RESOLVERS: list[Resolver] = []


def register_resolver(resolver: Resolver) -> None:
    """Add a database integration's resolver (idempotent; called by ``otel_commerce.sqlalchemy`` / ``.django``)."""
    if resolver not in _RESOLVERS:
        _RESOLVERS.append(resolver)


def holder_for(on_commit: object) -> Holder | None:
    """Where an event recorded now with ``on_commit`` goes: a holder, or None (emit now).

    ``on_commit``: ``None`` (default: ``OTEL_COMMERCE_ON_COMMIT`` / an integration's setting), ``True``
    (the database transaction in progress in this thread or task, if any), ``False`` (no database
    transaction), or a session / alias an integration recognises. Without a database holder, an open
    ``transaction()`` block holds the event. Raises :class:`EventValidationError` for a target no
    registered integration recognises.
    """
    if on_commit is None and not _RESOLVERS:  # the common case: no integration bound, the default target
        return _CURRENT.get()  # (True or None: both mean "an open transaction() block, if any" without one)
    if on_commit is not False:
        target: object = True if on_commit is None and _slot.RUNTIME.settings.on_commit else on_commit
        for resolver in list(_RESOLVERS):
            try:
                found = resolver(target)
            except Exception as exc:  # never raise into the handler: emit now, loudly (never lose it)
                logger.warning("otel-commerce: cannot find the transaction of an event, emitting it now: %s", exc)
                _slot.RUNTIME.report_error(exc)
                return None
            if found is NOW:
                return _CURRENT.get()
            if found is not None:
                return found  # type: ignore[return-value]
        if target is not None and target is not True:
            raise EventValidationError(
                f"on_commit must be True, False, None or a session of a bound integration, got {type(target).__name__}"
                " (call otel_commerce.sqlalchemy.bind(...) or import otel_commerce.django first)"
            )
    return _CURRENT.get()


def hold(pending: Pending, holder: Holder | None) -> None:
    """Give ``pending`` to ``holder`` (with the current OTel context), or emit it now when there is none."""
    if holder is None:
        from ._recorder import emit_pending

        emit_pending(pending)
    else:
        holder.hold(Held(pending, otel_context.get_current()))


def release(items: Iterable[Held]) -> None:
    """Emit held events (their transaction committed): OTel record + delivery, each in its recorded context."""
    from ._recorder import emit_pending

    for item in items:
        ctx = item.context
        span = trace.get_current_span(ctx)
        if not span.is_recording():  # ended (or never recording): keep its ids, not the object
            ctx = trace.set_span_in_context(NonRecordingSpan(span.get_span_context()), ctx)
        try:
            emit_pending(item.pending, context=ctx)
        except Exception as exc:  # telemetry never raises into the app (nor into its ORM's hooks)
            _slot.RUNTIME.report_error(exc, item.pending)


_last_warning = 0.0


def discard(items: list[Held], reason: str) -> None:
    """Drop held events (their transaction did not commit): counted ``discarded{reason}`` and in ``stats()``.

    ``reason``: ``rollback`` (rolled back, or an exception left ``transaction()``) or ``closed`` (a
    database transaction that ended without a commit or a rollback, e.g. ``Session.close()``).
    A ``closed`` discard is also logged at WARNING (at most once a minute): it often means a session
    that was never committed.
    """
    global _last_warning
    n = len(items)
    if not n:
        return
    items.clear()
    rt = _slot.RUNTIME
    rt.counters["discarded"] = rt.counters.get("discarded", 0) + n
    _metrics.count("discarded", n, reason=reason)
    now = time.monotonic()
    if reason == "closed" and now - _last_warning > 60.0:
        _last_warning = now
        logger.warning(
            "otel-commerce: %d event(s) discarded: their database transaction ended without a commit "
            "(counted discarded{reason=closed})",
            n,
        )
    else:
        logger.debug("otel-commerce: %d event(s) discarded (reason=%s)", n, reason)


class _Block:
    """The events of one ``transaction()`` block."""

    __slots__ = ("items", "outcome", "parent")

    def __init__(self, parent: _Block | None) -> None:
        self.parent = parent
        self.items: list[Held] = []
        self.outcome: str | None = None  # None while open, then "released" or "discarded"

    def hold(self, item: Held) -> None:
        if self.outcome is None:
            self.items.append(item)
        elif self.outcome == "released":  # a task started inside the block records after it ended:
            if self.parent is not None:  # it belongs to the enclosing block (released or discarded with it)
                self.parent.hold(item)
            else:
                release([item])
        else:
            discard([item], "rollback")


_CURRENT: ContextVar[_Block | None] = ContextVar("otel_commerce_transaction", default=None)


class Transaction:
    """``with otel_commerce.transaction():`` — deliver the events recorded inside only if the block succeeds.

    The events are recorded as usual (validated, ``event_id``, timestamp and trace ids fixed at the call)
    but held: when the block exits normally they are released — emitted as OTel log records with
    their recorded timestamp and span context, and handed to delivery — or, in a nested block, handed
    to the enclosing block. When the block exits with an exception (any ``BaseException``) they are
    discarded and counted ``commerce.events.discarded{reason=rollback}`` / ``stats()["discarded"]``.
    ``on_error`` events of ``@commerce_event`` (``checkout.failed``) are never held. Held per thread /
    asyncio task (a ``ContextVar``). A database transaction named with ``on_commit=`` takes precedence.
    """

    __slots__ = ("_block", "_token")

    def __init__(self) -> None:
        self._block: _Block | None = None
        self._token: Token[_Block | None] | None = None

    def __enter__(self) -> Transaction:
        if self._block is not None:
            raise RuntimeError("a transaction() object cannot be entered twice; call transaction() again")
        self._block = _Block(_CURRENT.get())
        self._token = _CURRENT.set(self._block)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        block, token = self._block, self._token
        assert block is not None and token is not None
        try:
            _CURRENT.reset(token)
        except ValueError:  # exited in another context (a generator moved across tasks): restore by hand
            _CURRENT.set(block.parent)
        items, block.items = block.items, []
        if exc_type is not None:
            block.outcome = "discarded"
            discard(items, "rollback")
        else:
            block.outcome = "released"
            if block.parent is not None:
                for item in items:
                    block.parent.hold(item)
            else:
                release(items)

    async def __aenter__(self) -> Transaction:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    @property
    def pending(self) -> list[Any]:
        """The envelopes held so far in this block (``CommerceEvent``; empty once it has ended)."""
        return [item.pending.event for item in self._block.items] if self._block is not None else []


def transaction() -> Transaction:
    """A block whose events are delivered only if it exits normally (see :class:`Transaction`)."""
    return Transaction()
