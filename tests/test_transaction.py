"""``with otel_commerce.transaction():`` through the real OTel SDK (in-process, captured, no sinks)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from otel_fixtures import OtelSdk, global_sdk

import otel_commerce
from otel_commerce import EventValidationError, Settings, commerce_event, record_event, stats
from otel_commerce._runtime import RUNTIME
from otel_commerce.testing import CapturedEvents, capture_events

tracer = trace.get_tracer("tests")


@pytest.fixture
def sdk() -> Iterator[OtelSdk]:
    s = global_sdk()
    s.clear()
    RUNTIME.install(Settings(), None)
    yield s
    s.clear()
    RUNTIME.reset()


@pytest.fixture
def events(sdk: OtelSdk) -> Iterator[CapturedEvents]:
    with capture_events() as captured:
        yield captured


def _order(prefix: str, n: int = 1) -> str:
    return record_event("order.completed", organization_id="t", data={"order_id": f"{prefix}-{n}", "revenue": 1.0})


def _log_ids(sdk: OtelSdk) -> list[str]:
    return [dict(r.log_record.attributes or {})["commerce.event_id"] for r in sdk.logs.get_finished_logs()]


def test_events_are_held_until_the_block_exits_and_keep_their_record_time_identity(
    sdk: OtelSdk, events: CapturedEvents
) -> None:
    """Inside the block nothing is emitted (no OTel record, no delivery); at exit the record carries the
    recorded timestamp and span context, though the span has ended by then."""
    with otel_commerce.transaction() as tx:
        with tracer.start_as_current_span("checkout") as span:
            event_id = _order("tx-held")
        assert events == [] and sdk.logs.get_finished_logs() == ()
        assert [e.event_id for e in tx.pending] == [event_id]
        recorded_ts = tx.pending[0].timestamp
    [event] = events
    assert event.event_id == event_id and event.timestamp == recorded_ts
    sc = span.get_span_context()
    assert event.trace_id == format(sc.trace_id, "032x") and event.span_id == format(sc.span_id, "016x")
    [log] = [r.log_record for r in sdk.logs.get_finished_logs()]
    assert log.trace_id == sc.trace_id and log.span_id == sc.span_id  # what an APM sees: the recorded span
    assert log.timestamp == int(recorded_ts.timestamp()) * 10**9 + recorded_ts.microsecond * 1000


def test_an_exception_discards_the_events_and_counts_them(sdk: OtelSdk, events: CapturedEvents) -> None:
    before = stats()["discarded"]
    with pytest.raises(RuntimeError), otel_commerce.transaction():
        _order("tx-rollback", 1)
        _order("tx-rollback", 2)
        raise RuntimeError("payment declined")
    assert events == [] and sdk.logs.get_finished_logs() == ()  # no ghost order, not even in the APM
    assert stats()["discarded"] == before + 2


def test_nested_blocks_release_into_the_outer_one(sdk: OtelSdk, events: CapturedEvents) -> None:
    with otel_commerce.transaction():
        first = _order("tx-nested", 1)
        with otel_commerce.transaction():
            inner = _order("tx-nested", 2)
        assert events == []  # released into the outer block, not delivered
        with pytest.raises(ValueError), otel_commerce.transaction():
            _order("tx-nested", 3)
            raise ValueError
        last = _order("tx-nested", 4)
    assert [e.event_id for e in events] == [first, inner, last]


def test_outer_rollback_discards_what_inner_blocks_released(sdk: OtelSdk, events: CapturedEvents) -> None:
    with pytest.raises(KeyError), otel_commerce.transaction():
        with otel_commerce.transaction():
            _order("tx-outer-rb")
        raise KeyError("x")
    assert events == []


def test_a_task_recording_after_its_inner_block_released_belongs_to_the_enclosing_block(
    sdk: OtelSdk, events: CapturedEvents
) -> None:
    """A task started in an inner block records after that block released: the event goes to the nearest
    still-open enclosing block — discarded if it rolls back, emitted only when the root releases."""

    async def scenario(prefix: str, fail: bool) -> list[str]:
        go = asyncio.Event()
        recorded: list[str] = []

        async def late() -> None:
            await go.wait()
            recorded.append(_order(prefix))

        with contextlib.suppress(RuntimeError):
            async with otel_commerce.transaction():
                async with otel_commerce.transaction():
                    task = asyncio.create_task(late())
                go.set()  # the inner block has released; the outer one is still open
                await task
                assert events == [] and sdk.logs.get_finished_logs() == ()  # held by the outer block
                if fail:
                    raise RuntimeError("payment failed: roll back the whole order")
        return recorded

    before = stats()["discarded"]
    asyncio.run(scenario("tx-late-rb", fail=True))
    assert events == [] and sdk.logs.get_finished_logs() == ()  # no ghost order
    assert stats()["discarded"] == before + 1
    kept = asyncio.run(scenario("tx-late-ok", fail=False))
    assert [e.event_id for e in events] == kept and _log_ids(sdk) == kept


def test_on_error_events_bypass_the_block(sdk: OtelSdk, events: CapturedEvents) -> None:
    """The event describing a failure is not rolled back with it; the success event is."""

    @commerce_event("order.completed", on_error="checkout.failed", organization_id="t")
    def checkout(order_id: str) -> dict[str, object]:
        record_event("order.created", organization_id="t", data={"order_id": order_id})
        raise RuntimeError("card declined")

    with pytest.raises(RuntimeError), otel_commerce.transaction():
        checkout("tx-onerror-1")
    assert events.types == ["checkout.failed"]


def test_threads_and_tasks_are_isolated(sdk: OtelSdk, events: CapturedEvents) -> None:
    """A block in one thread (or task) does not hold the events of another."""
    other: list[str] = []
    with otel_commerce.transaction():
        t = threading.Thread(target=lambda: other.append(_order("tx-iso-thread")))
        t.start()
        t.join()
        assert [e.event_id for e in events] == other  # the thread's event went out at once

        async def main() -> None:
            async def in_block() -> None:
                async with otel_commerce.transaction():
                    _order("tx-iso-task", 1)
                    await asyncio.sleep(0)
                    raise asyncio.CancelledError

            async def outside() -> str:
                await asyncio.sleep(0)
                return _order("tx-iso-task", 2)

            # each task runs in a copy of the context: the outer sync block is visible to both, but the
            # cancelled block of the first task is not visible to the second
            results = await asyncio.gather(in_block(), outside(), return_exceptions=True)
            assert isinstance(results[0], asyncio.CancelledError)

        asyncio.run(main())
        assert len(events) == 1  # task 2's event is held by the enclosing block; task 1's was discarded
    assert [e.data["order_id"] for e in events] == ["tx-iso-thread-1", "tx-iso-task-2"]


def test_bad_on_commit_target_is_a_typed_error(sdk: OtelSdk) -> None:
    with pytest.raises(EventValidationError, match="on_commit"):
        record_event("order.completed", organization_id="t", data={"order_id": "x"}, on_commit="nope")
    with pytest.raises(EventValidationError, match="on_commit"):
        commerce_event("order.completed", on_commit="nope")  # type: ignore[arg-type]


def test_span_mode_adds_the_span_event_at_release_while_the_span_records(sdk: OtelSdk, events: CapturedEvents) -> None:
    RUNTIME.install(Settings(mode="span"), None)
    with tracer.start_as_current_span("checkout") as span:
        with otel_commerce.transaction():
            _order("tx-span")
            assert [e.name for e in span.events] == []  # held: not on the span yet (no ghost in the trace)
        assert [e.name for e in span.events] == ["commerce.order.completed"]
    assert len(events) == 1


@pytest.mark.parametrize("default_on_commit", [False, True])
def test_holder_for_the_default_target_without_integrations(sdk: OtelSdk, default_on_commit: bool) -> None:
    """No integration bound (the common case, taken at once): ``on_commit=None`` is the open ``transaction()``
    block, if any, whatever ``OTEL_COMMERCE_ON_COMMIT`` says (no database transaction can be found); a
    resolver bound later is asked again."""
    from otel_commerce._record import _transaction

    RUNTIME.install(Settings(on_commit=default_on_commit), None)
    saved = list(_transaction._RESOLVERS)
    _transaction._RESOLVERS.clear()
    try:
        assert _transaction.holder_for(None) is None
        with otel_commerce.transaction():
            block = _transaction.holder_for(None)
            assert block is not None and block is _transaction.holder_for(False) is _transaction.holder_for(True)
        asked: list[object] = []

        def resolver(target: object) -> object:
            asked.append(target)
            return None

        _transaction._RESOLVERS.append(resolver)
        assert _transaction.holder_for(None) is None
        assert asked == [True if default_on_commit else None]
    finally:
        _transaction._RESOLVERS[:] = saved
