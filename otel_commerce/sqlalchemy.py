"""SQLAlchemy 2.x: commerce events delivered only if the session's transaction commits.

::

    from otel_commerce import record_event
    from otel_commerce.sqlalchemy import bind

    Session = bind(sessionmaker(engine))        # or bind(async_sessionmaker(engine)), bind(session)

    with Session() as session, session.begin():
        session.add(order)
        record_event("order.completed", order=order, on_commit=True)   # or on_commit=session
    # delivered here, after COMMIT; a rollback (or close() without commit) discards it, counted

Specified by behaviour, because the event names mislead (``after_commit`` also fires when a savepoint is
released; ``close()`` of an autobegun transaction fires neither a commit nor a rollback event):

- an event attaches to the innermost ``SessionTransaction`` (savepoint or root) at record time;
- a released savepoint moves its events to the enclosing transaction; a rolled-back one discards them;
- only the root transaction's commit releases them (emitted and handed to delivery, in the recorded
  span context); a root that ends without a commit discards them, counted
  ``commerce.events.discarded{reason=rollback}`` (rolled back) or ``{reason=closed}`` (``close()``);
- ``on_commit=True`` picks the bound session whose transaction is in progress in the current thread or
  asyncio task (tracked from the session's begin events; the most recently begun wins); with none in
  progress the event is delivered at once. ``AsyncSession`` works through its ``sync_session``.

Requires the ``sqlalchemy`` extra (``pip install -e ".[sqlalchemy]"`` in a checkout) (SQLAlchemy >= 2.0).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction, scoped_session, sessionmaker

from ._record._transaction import NOW, Held, Holder, _Now, discard, register_resolver, release

__all__ = ["bind", "unbind"]

T = TypeVar("T")

_INFO_KEY = "otel_commerce.held"

#: sessions whose root transaction began in this thread / task (most recent last)
_ACTIVE: ContextVar[tuple[weakref.ref[Session], ...]] = ContextVar("otel_commerce_sqlalchemy_active", default=())


class _State:
    """Per session (in ``Session.info``): the events held by each of its transactions."""

    __slots__ = ("held", "rolled_back")

    def __init__(self) -> None:
        self.held: dict[SessionTransaction, list[Held]] = {}
        self.rolled_back = False  # an after_rollback since the last transaction end


def _state(session: Session) -> _State:
    state = session.info.get(_INFO_KEY)
    if not isinstance(state, _State):
        state = session.info[_INFO_KEY] = _State()
    return state


def _innermost(session: Session) -> SessionTransaction | None:
    """The savepoint or root transaction in progress (never a flush's subtransaction)."""
    return session.get_nested_transaction() or session.get_transaction()


def _holder_of(tx: SessionTransaction) -> SessionTransaction:
    """The transaction a released savepoint hands its events to: the nearest savepoint or the root."""
    parent = tx.parent
    while parent is not None and not parent.nested and parent.parent is not None:
        parent = parent.parent
    return parent if parent is not None else tx


class _TxHolder:
    __slots__ = ("session", "tx")

    def __init__(self, session: Session, tx: SessionTransaction) -> None:
        self.session = session
        self.tx = tx

    def hold(self, item: Held) -> None:
        _state(self.session).held.setdefault(self.tx, []).append(item)


# ---- listeners (never raise into SQLAlchemy: release/discard report their own errors) --------------
def _after_transaction_create(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        _ACTIVE.set((*_ACTIVE.get(), weakref.ref(session)))


def _after_commit(session: Session) -> None:
    tx = _innermost(session)  # after_commit fires for the root and for every released savepoint
    if tx is None:
        return
    state = _state(session)
    items = state.held.pop(tx, None)
    if not items:
        return
    if tx.parent is None:
        release(items)
    else:
        state.held.setdefault(_holder_of(tx), []).extend(items)


def _after_rollback(session: Session) -> None:
    _state(session).rolled_back = True


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None and not transaction.nested:
        return  # a subtransaction (flush): holds nothing
    state = _state(session)
    items = state.held.pop(transaction, None)
    if items:  # still here: it ended without a commit
        discard(items, "rollback" if transaction.nested or state.rolled_back else "closed")
    state.rolled_back = False
    if transaction.parent is None:
        _ACTIVE.set(tuple(r for r in _ACTIVE.get() if r() is not session and r() is not None))


_LISTENERS: dict[str, Callable[..., Any]] = {
    "after_transaction_create": _after_transaction_create,
    "after_commit": _after_commit,
    "after_rollback": _after_rollback,
    "after_transaction_end": _after_transaction_end,
}


_MARK = "_otel_commerce_bound"
#: the sync_session_class subclass given to bound async_sessionmakers, one per base class (kept alive:
#: SQLAlchemy's listener registry is keyed by id(), so a collected class's id must not be reused for one)
_ASYNC_BASES: dict[type[Session], type[Session]] = {}


def _listen(target: Session | type[Session]) -> None:
    """Add our listeners once per class / instance (marked; ``event.contains`` can be fooled by a reused id).

    A class and its subclass both bound is harmless: every listener is idempotent per transaction.
    """
    if isinstance(target, type):
        if target.__dict__.get(_MARK):
            return
        setattr(target, _MARK, True)
    else:
        if target.info.get(_MARK) or getattr(type(target), _MARK, False):
            return
        target.info[_MARK] = True
    for name, fn in _LISTENERS.items():
        event.listen(target, name, fn)


def _unlisten(target: Session | type[Session]) -> None:
    if isinstance(target, type):
        if not target.__dict__.get(_MARK):
            return
        delattr(target, _MARK)
    elif not target.info.pop(_MARK, False):
        return
    for name, fn in _LISTENERS.items():
        if event.contains(target, name, fn):
            event.remove(target, name, fn)


def _target_class(target: Any) -> type[Session] | None:
    if isinstance(target, scoped_session):
        target = target.session_factory
    if isinstance(target, sessionmaker):
        target = target.class_
    return target if isinstance(target, type) and issubclass(target, Session) else None


def bind(target: T) -> T:
    """Track the transactions of ``target``'s sessions so that ``on_commit`` events wait for their commit.

    ``target``: a ``sessionmaker``, ``async_sessionmaker``, ``scoped_session``, a ``Session`` subclass,
    or one ``Session`` / ``AsyncSession``. Returns ``target`` (``Session = bind(sessionmaker(engine))``).
    Idempotent. An ``async_sessionmaker`` is given its own ``sync_session_class`` subclass (through
    ``async_sessionmaker.configure``), so other makers are unaffected. Raises ``TypeError`` for anything
    else. Sessions named explicitly with ``on_commit=session`` are bound on first use.
    """
    cls = _target_class(target)
    if cls is not None:
        _listen(cls)
    elif isinstance(target, Session):
        _listen(target)
    elif isinstance(target, AsyncSession):
        _listen(target.sync_session)
    elif isinstance(target, async_sessionmaker):
        base = target.kw.get("sync_session_class") or target.class_.sync_session_class
        if not getattr(base, _MARK, False):
            if base not in _ASYNC_BASES:
                _ASYNC_BASES[base] = type(base.__name__, (base,), {"__module__": base.__module__})
            base = _ASYNC_BASES[base]
            target.configure(sync_session_class=base)
        _listen(base)
    else:
        raise TypeError(
            "otel_commerce.sqlalchemy.bind() takes a sessionmaker, async_sessionmaker, scoped_session, a Session "
            f"subclass, a Session or an AsyncSession, got {type(target).__name__}"
        )
    return target


def unbind(target: Any) -> None:
    """Stop tracking what :func:`bind` tracks (tests, reconfiguration); events already held stay held."""
    if isinstance(target, AsyncSession):
        target = target.sync_session
    elif isinstance(target, async_sessionmaker):
        target = target.kw.get("sync_session_class") or target.class_.sync_session_class
    cls = _target_class(target)
    if cls is not None:
        _unlisten(cls)
    elif isinstance(target, Session):
        _unlisten(target)


def _sync_session(target: object) -> Session | None:
    if isinstance(target, Session):
        return target
    if isinstance(target, AsyncSession):
        return target.sync_session
    if isinstance(target, scoped_session):
        current = target()
        return current if isinstance(current, Session) else None
    return None


def _resolve(target: object) -> Holder | _Now | None:
    if target is True:
        for ref in reversed(_ACTIVE.get()):
            session = ref()
            if session is not None and session.in_transaction():
                tx = _innermost(session)  # also a failed (inactive) one: it can only end in a rollback
                if tx is not None:
                    return _TxHolder(session, tx)
        return None  # nothing of ours in progress here
    session = _sync_session(target)
    if session is None:
        return None  # not a session: another integration's target
    _listen(session)  # bound on first use (a no-op when its class or itself already is)
    tx = _innermost(session)
    if tx is None or not session.in_transaction():
        return NOW
    return _TxHolder(session, tx)


register_resolver(_resolve)
