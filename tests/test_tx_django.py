"""Django ``transaction.atomic()`` on a real SQLite database (real transactions: plain test functions, not
``TestCase``, whose wrapping ``atomic`` would never run ``on_commit``)."""

from __future__ import annotations

import gc
import tempfile
from collections.abc import Iterator
from pathlib import Path

import django
import pytest
from django.conf import settings

_DB_DIR = tempfile.TemporaryDirectory(prefix="otel-commerce-django-")
if not settings.configured:
    settings.configure(
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(Path(_DB_DIR.name) / "shop.db")}},
        INSTALLED_APPS=["otel_commerce.django.OtelCommerceConfig"],
        ROOT_URLCONF=__name__,
        SECRET_KEY="test",
        ALLOWED_HOSTS=["testserver"],
        USE_TZ=True,
    )
    django.setup()

from asgiref.sync import sync_to_async  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.test import AsyncClient, override_settings  # noqa: E402
from django.urls import path  # noqa: E402

from otel_commerce import Settings, commerce_event, record_event, stats  # noqa: E402
from otel_commerce._runtime import RUNTIME  # noqa: E402
from otel_commerce.testing import CapturedEvents, capture_events  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def orders_table() -> Iterator[None]:
    with connection.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY)")
    yield
    connection.close()


@pytest.fixture
def events() -> Iterator[CapturedEvents]:
    RUNTIME.install(Settings(), None)
    with capture_events() as captured:
        yield captured
    RUNTIME.reset()


def _insert(order_id: str) -> None:
    with connection.cursor() as cur:
        cur.execute("INSERT INTO orders (id) VALUES (%s)", [order_id])


def _exists(order_id: str) -> bool:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM orders WHERE id = %s", [order_id])
        return bool(cur.fetchone()[0])


def _order(order_id: str, **kw: object) -> str:
    return record_event("order.completed", organization_id="t", data={"order_id": order_id, "revenue": 3.0}, **kw)  # type: ignore[arg-type]


def _ours() -> list[tuple[set[str], bool]]:
    """Our callbacks registered on the connection: (savepoint ids, robust)."""
    return [(sids, robust) for sids, func, robust in connection.run_on_commit if func.__qualname__ == "_Batch.run"]


def test_commit_delivers_once_after_the_commit(events: CapturedEvents) -> None:
    with transaction.atomic():
        _insert("dj-commit-1")
        first = _order("dj-commit-1", on_commit=True)
        second = _order("dj-commit-2", on_commit=True)
        assert events == []
        assert _ours() == [(set(), True)]  # one robust callback for the level, not one per event
    assert [e.event_id for e in events] == [first, second] and _exists("dj-commit-1")


def test_rollback_delivers_nothing_and_is_counted(events: CapturedEvents) -> None:
    before = stats()["discarded"]
    with pytest.raises(ValueError), transaction.atomic():
        _insert("dj-rb-1")
        _order("dj-rb-1", on_commit=True)
        raise ValueError("declined")
    gc.collect()
    assert events == [] and not _exists("dj-rb-1")
    assert stats()["discarded"] == before + 1


def test_released_savepoint_then_outer_rollback_delivers_nothing(events: CapturedEvents) -> None:
    with pytest.raises(ValueError), transaction.atomic():
        _insert("dj-sp-1")
        with transaction.atomic():  # savepoint, released
            _order("dj-sp-1", on_commit=True)
        raise ValueError
    assert events == [] and not _exists("dj-sp-1")


def test_inner_rollback_then_outer_event_delivers_only_the_outer(events: CapturedEvents) -> None:
    """The case a per-transaction callback gets wrong: registered in the inner block, it is dropped with
    the inner rollback, and the outer block's later event with it."""
    before = stats()["discarded"]
    with transaction.atomic():
        _insert("dj-inner-1")
        with pytest.raises(KeyError), transaction.atomic():
            _order("dj-inner-ghost", on_commit=True)
            raise KeyError
        outer = _order("dj-inner-1", on_commit=True)
        with transaction.atomic():
            kept = _order("dj-inner-2", on_commit=True)  # released savepoint: kept
        with pytest.raises(KeyError), transaction.atomic():  # a sibling savepoint, rolled back
            _order("dj-inner-ghost-2", on_commit=True)
            raise KeyError
    assert [e.event_id for e in events] == [outer, kept] and _exists("dj-inner-1")
    gc.collect()
    assert stats()["discarded"] == before + 2


def test_outside_a_transaction_delivers_immediately(events: CapturedEvents) -> None:
    event_id = _order("dj-now-1", on_commit=True)
    assert [e.event_id for e in events] == [event_id]


def test_django_setting_opts_in(events: CapturedEvents) -> None:
    with override_settings(OTEL_COMMERCE_ON_COMMIT=True), transaction.atomic():
        _order("dj-setting-1")
        assert events == []
    assert len(events) == 1
    with transaction.atomic():  # setting off again: at once
        _order("dj-setting-2")
        assert len(events) == 2


def test_raising_handler_inside_atomic_delivers_checkout_failed_only(events: CapturedEvents) -> None:
    @commerce_event("order.completed", on_error="checkout.failed", organization_id="t", on_commit=True)
    def checkout(order_id: str) -> dict[str, object]:
        _insert(order_id)
        record_event("order.created", organization_id="t", data={"order_id": order_id}, on_commit=True)
        raise RuntimeError("card declined")

    with pytest.raises(RuntimeError), transaction.atomic():
        checkout("dj-fail-1")
    assert events.types == ["checkout.failed"] and not _exists("dj-fail-1")


def test_earlier_non_robust_hook_that_raises_skips_ours(events: CapturedEvents) -> None:
    """Measured: Django runs on_commit hooks in order; a non-robust one that raises propagates out of
    atomic() after the COMMIT, and the hooks after it — ours — never run. The data is committed, our
    event is not delivered; it is counted discarded{reason=rollback} when Django frees the hook list."""
    before = stats()["discarded"]

    def app_hook() -> None:
        raise ConnectionError("cache unavailable")

    raised = False
    try:
        with transaction.atomic():
            _insert("dj-hook-1")
            transaction.on_commit(app_hook)  # non-robust, registered before our event
            _order("dj-hook-1", on_commit=True)
    except ConnectionError:
        raised = True
    gc.collect()
    assert raised and _exists("dj-hook-1")  # committed
    assert events == []  # ... but our hook was skipped
    assert stats()["discarded"] == before + 1  # and counted, not silently lost


async def order_view(request: HttpRequest) -> JsonResponse:
    """An async view: no atomic() possible here, so the event goes out at once; sync work wrapped in
    sync_to_async runs in a thread where atomic() and on_commit work as usual."""
    now = _order("dj-async-view-1", on_commit=True)

    def save() -> str:
        with transaction.atomic():
            _insert("dj-async-view-2")
            return _order("dj-async-view-2", on_commit=True)

    held = await sync_to_async(save)()
    return JsonResponse({"now": now, "held": held})


urlpatterns = [path("orders", order_view)]


async def test_async_view(events: CapturedEvents) -> None:
    response = await AsyncClient().post("/orders")
    assert response.status_code == 200
    body = response.json()
    assert [e.event_id for e in events] == [body["now"], body["held"]]
