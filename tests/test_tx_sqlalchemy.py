"""SQLAlchemy 2.x sessions on a real SQLite database (sync, and async through aiosqlite): events recorded
with ``on_commit`` are delivered once if the root transaction commits, never otherwise (counted)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from otel_fixtures import OtelSdk, global_sdk
from sqlalchemy import String, create_engine, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from otel_commerce import Settings, commerce_event, record_event, stats
from otel_commerce import sqlalchemy as oc_sa
from otel_commerce._runtime import RUNTIME
from otel_commerce.testing import CapturedEvents, capture_events


class Base(DeclarativeBase):
    pass


class OrderRow(Base):
    __tablename__ = "orders"
    id: Mapped[str] = mapped_column(String, primary_key=True)


@pytest.fixture
def events() -> Iterator[CapturedEvents]:
    global_sdk().clear()
    RUNTIME.install(Settings(), None)
    with capture_events() as captured:
        yield captured
    RUNTIME.reset()


@pytest.fixture
def maker(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'shop.db'}")
    Base.metadata.create_all(engine)
    yield oc_sa.bind(sessionmaker(engine))
    engine.dispose()


def _order(order_id: str, **kw: object) -> str:
    return record_event("order.completed", organization_id="t", data={"order_id": order_id, "revenue": 2.5}, **kw)  # type: ignore[arg-type]


def _rows(maker: sessionmaker[Session]) -> int:
    with maker() as s:
        return int(s.scalar(select(func.count()).select_from(OrderRow)) or 0)


def test_commit_delivers_once_after_the_commit(maker: sessionmaker[Session], events: CapturedEvents) -> None:
    sdk: OtelSdk = global_sdk()
    with maker() as session, session.begin():
        session.add(OrderRow(id="sa-commit-1"))
        event_id = _order("sa-commit-1", on_commit=True)
        session.flush()
        assert events == [] and sdk.logs.get_finished_logs() == ()  # not before the commit
    assert [e.event_id for e in events] == [event_id] and _rows(maker) == 1
    assert len(sdk.logs.get_finished_logs()) == 1


def test_rollback_delivers_nothing_and_is_counted(maker: sessionmaker[Session], events: CapturedEvents) -> None:
    before = stats()["discarded"]
    with maker() as session:
        session.add(OrderRow(id="sa-rb-1"))
        _order("sa-rb-1", on_commit=session)
        session.rollback()
    assert events == [] and _rows(maker) == 0
    assert stats()["discarded"] == before + 1


def test_released_savepoint_then_outer_rollback_delivers_nothing(
    maker: sessionmaker[Session], events: CapturedEvents
) -> None:
    with maker() as session:
        session.add(OrderRow(id="sa-sp-1"))
        with session.begin_nested():  # SAVEPOINT ... RELEASE (after_commit fires here too)
            _order("sa-sp-1", on_commit=True)
        assert events == []
        session.rollback()
    assert events == [] and _rows(maker) == 0


def test_rolled_back_savepoint_inside_committed_transaction_keeps_only_outer_events(
    maker: sessionmaker[Session], events: CapturedEvents
) -> None:
    with maker() as session:
        session.add(OrderRow(id="sa-sp2-1"))
        first = _order("sa-sp2-1", on_commit=True)
        nested = session.begin_nested()
        _order("sa-sp2-ghost", on_commit=True)
        nested.rollback()
        with session.begin_nested():
            kept = _order("sa-sp2-2", on_commit=True)  # released savepoint: moves to the root
        last = _order("sa-sp2-3", on_commit=True)
        session.commit()
    assert sorted(e.event_id for e in events) == sorted([first, kept, last]) and _rows(maker) == 1


def test_read_only_session_closed_without_commit_discards_counted_closed(
    maker: sessionmaker[Session], events: CapturedEvents, caplog: pytest.LogCaptureFixture
) -> None:
    before = stats()["discarded"]
    session = maker()
    session.execute(select(OrderRow))  # autobegin
    _order("sa-closed-1", on_commit=True)
    session.close()  # neither after_commit nor after_rollback fires
    assert events == [] and stats()["discarded"] == before + 1
    assert "ended without a commit" in caplog.text


def test_no_transaction_in_progress_delivers_at_once(maker: sessionmaker[Session], events: CapturedEvents) -> None:
    with maker() as session:
        event_id = _order("sa-now-1", on_commit=True)  # nothing begun yet: at once (documented)
        assert [e.event_id for e in events] == [event_id]
        explicit = _order("sa-now-2", on_commit=session)
        assert [e.event_id for e in events] == [event_id, explicit]


def test_global_opt_in_and_decorator(maker: sessionmaker[Session], events: CapturedEvents) -> None:
    """OTEL_COMMERCE_ON_COMMIT=1 holds every event; the decorator's on_commit=False opts one out; an
    on_error event is never held."""
    RUNTIME.install(Settings(on_commit=True), None)

    @commerce_event("order.created", organization_id="t", on_error="checkout.failed")
    def create(session: Session, order_id: str, fail: bool = False) -> dict[str, str]:
        session.add(OrderRow(id=order_id))
        session.flush()
        if fail:
            raise RuntimeError("declined")
        return {"order_id": order_id}

    @commerce_event("cart.updated", organization_id="t", on_commit=False)
    def touch(cart_id: str) -> dict[str, str]:
        return {"cart_id": cart_id, "id": cart_id}

    with maker() as session:
        with session.begin():
            create(session, "sa-glob-1")
            touch("sa-glob-cart")
            assert events.types == ["cart.updated"]
        assert events.types == ["cart.updated", "order.created"]
        with pytest.raises(RuntimeError), session.begin():
            create(session, "sa-glob-2", fail=True)
    assert events.types == ["cart.updated", "order.created", "checkout.failed"]
    assert _rows(maker) == 1


def test_sessions_in_two_threads_do_not_mix(maker: sessionmaker[Session], events: CapturedEvents) -> None:
    """on_commit=True finds the session begun in *this* thread: a rollback in another thread's session
    does not discard this thread's event."""
    import threading

    ready, done = threading.Event(), threading.Event()

    def other() -> None:
        with maker() as s:
            s.add(OrderRow(id="sa-thr-other"))
            ready.set()
            done.wait(10)
            s.rollback()

    t = threading.Thread(target=other)
    t.start()
    assert ready.wait(10)
    with maker() as session, session.begin():
        session.add(OrderRow(id="sa-thr-1"))
        mine = _order("sa-thr-1", on_commit=True)
    done.set()
    t.join()
    assert [e.event_id for e in events] == [mine]


# ---- async (aiosqlite) ---------------------------------------------------------------------------
@pytest.fixture
async def amaker(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'shop-async.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield oc_sa.bind(async_sessionmaker(engine, expire_on_commit=False))
    await engine.dispose()


async def _arows(amaker: async_sessionmaker[AsyncSession]) -> int:
    async with amaker() as s:
        return int(await s.scalar(select(func.count()).select_from(OrderRow)) or 0)


async def test_async_commit_delivers_once(amaker: async_sessionmaker[AsyncSession], events: CapturedEvents) -> None:
    async with amaker() as session, session.begin():
        session.add(OrderRow(id="sa-async-1"))
        await session.flush()
        event_id = _order("sa-async-1", on_commit=True)  # found from the task's begin event
        assert events == []
    assert [e.event_id for e in events] == [event_id] and await _arows(amaker) == 1


async def test_async_rollback_and_savepoints(amaker: async_sessionmaker[AsyncSession], events: CapturedEvents) -> None:
    before = stats()["discarded"]
    async with amaker() as session:
        session.add(OrderRow(id="sa-async-rb"))
        await session.flush()
        _order("sa-async-rb", on_commit=session)
        await session.rollback()
    assert events == [] and stats()["discarded"] == before + 1

    async with amaker() as session:
        session.add(OrderRow(id="sa-async-sp"))
        await session.flush()
        outer = _order("sa-async-sp-1", on_commit=session)
        nested = await session.begin_nested()
        _order("sa-async-sp-ghost", on_commit=session)
        await nested.rollback()
        async with session.begin_nested():
            inner = _order("sa-async-sp-2", on_commit=True)
        await session.commit()
    assert sorted(e.event_id for e in events) == sorted([outer, inner])

    async with amaker() as session:  # released savepoint, then the root rolls back
        session.add(OrderRow(id="sa-async-sp3"))
        async with session.begin_nested():
            _order("sa-async-sp3", on_commit=True)
        await session.rollback()
    assert len(events) == 2


async def test_async_read_only_closed_and_task_isolation(
    amaker: async_sessionmaker[AsyncSession], events: CapturedEvents
) -> None:
    before = stats()["discarded"]
    session = amaker()
    await session.execute(select(OrderRow))
    _order("sa-async-closed", on_commit=True)
    await session.close()
    assert events == [] and stats()["discarded"] == before + 1

    async def request(order_id: str, commit: bool) -> str:
        """One request handler: its own session, begun in its own task."""
        async with amaker() as session:
            session.add(OrderRow(id=order_id))
            await session.flush()
            event_id = _order(order_id, on_commit=True)
            await asyncio.sleep(0)  # interleave with the other task
            await (session.commit() if commit else session.rollback())
            return event_id

    committed, _rolled_back = await asyncio.gather(
        request("sa-async-task-1", True), request("sa-async-task-2", False)
    )
    assert [e.event_id for e in events] == [committed]


def test_decorator_on_commit_callable_names_the_session(maker: sessionmaker[Session], events: CapturedEvents) -> None:
    @commerce_event("order.created", organization_id="t", on_commit=lambda session, order_id: session)
    def create(session: Session, order_id: str) -> dict[str, str]:
        session.add(OrderRow(id=order_id))
        session.flush()
        return {"order_id": order_id}

    with maker() as session:
        create(session, "sa-deco-1")
        assert events == []
        session.rollback()
        create(session, "sa-deco-2")
        session.commit()
    assert [e.data["order_id"] for e in events] == ["sa-deco-2"]
