"""Identity of an event: tenant-scoped, unambiguous UUIDv5 names; monotonic UUIDv7; end to end per tenant."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from collector_server import running_collector
from nats.js.client import JetStreamContext
from polling import poll
from streams import stored

from otel_commerce import Settings, record_event
from otel_commerce._cli._natsserver import NatsServer
from otel_commerce._model._catalog import new_event
from otel_commerce._model._identity import (
    EVENT_ID_NAMESPACE,
    LEGACY_EVENT_ID_NAMESPACE,
    _FallbackUuid7,
    _uuid5,
    _uuid5_hashlib,
    event_id_for,
    event_id_name,
    uuid7,
)
from otel_commerce._runtime import RUNTIME, build_engine

# Golden values: computed once with the standard library (uuid.uuid5 over json.dumps(..., separators=(",", ":"),
# ensure_ascii=False)) and frozen here. A change of any of them re-keys every stored event: never edit them.
GOLDEN = [
    (("order.completed", "shopify:acme", "gid://shopify/Order:1001", None), "a6c6aa9e-e12f-57fe-8974-9c8330e5c7fd"),
    (("order.completed", "shopify", "acme:gid://shopify/Order:1001", None), "181aec58-61c1-5a5d-a369-8d671ccbb76f"),
    (("order.completed", "tenant-a", "1001", None), "288680f5-f61e-5adb-b5ee-f77285d6ad4f"),
    (("order.completed", "tenant-b", "1001", None), "4a1354e9-f538-5e76-b03e-3ab360e14c31"),
    (("order.refunded", "shop:a", "ignored", "re:1"), "2da02ced-c5c5-5eb4-979f-7681423ba123"),
    (("order.completed", "café", "ü", None), "69316e24-78f0-555f-8f22-d383591eeb31"),
]


@pytest.mark.parametrize(("name", "expected"), GOLDEN)
def test_golden_event_ids(name: tuple[str, str, str, str | None], expected: str) -> None:
    type_, org, id_, key = name
    assert event_id_for(type_, org, id_, once=True, idempotency_key=key) == expected
    # the documented recipe, recomputed with the standard library only
    parts = [type_, org, "key", key] if key is not None else [type_, org, id_]
    assert str(uuid.uuid5(EVENT_ID_NAMESPACE, json.dumps(parts, separators=(",", ":"), ensure_ascii=False))) == expected


@pytest.mark.parametrize(("name", "expected"), GOLDEN)
def test_uuid5_backends_agree(name: tuple[str, str, str, str | None], expected: str) -> None:
    # uuid-utils (the hot path) and the hashlib fallback make the same id, ASCII or not
    raw = event_id_name(*name)
    assert _uuid5(raw) == _uuid5_hashlib(raw) == expected


def test_colon_in_organization_and_id_is_unambiguous() -> None:
    """``"shopify:acme" + "gid…"`` and ``"shopify" + "acme:gid…"`` join to one string with ':' but stay two ids."""
    a = event_id_for("order.completed", "shopify:acme", "gid://shopify/Order:1001", once=True)
    b = event_id_for("order.completed", "shopify", "acme:gid://shopify/Order:1001", once=True)
    assert a != b
    # a key that looks like the unkeyed encoding's tail never collides with it
    keyed = event_id_for("order.refunded", "shop", "x", once=True, idempotency_key="re:1")
    assert keyed != event_id_for("order.refunded", "shop", "key", once=True)
    assert keyed != event_id_for("order.refunded", "shop:key", "re:1", once=True)


def test_key_keeps_type_and_tenant() -> None:
    """One source id feeding several event types, or two tenants, never merges under an explicit key."""
    ids = {
        event_id_for(t, org, "o1", once=False, idempotency_key="src-1")
        for t in ("order.refunded", "payment.received")
        for org in ("tenant-a", "tenant-b")
    }
    assert len(ids) == 4


def test_new_namespace_differs_from_the_legacy_rule() -> None:
    assert EVENT_ID_NAMESPACE != LEGACY_EVENT_ID_NAMESPACE
    legacy = str(uuid.uuid5(LEGACY_EVENT_ID_NAMESPACE, "order.completed:1001"))
    assert new_event("order.completed", id="1001", organization_id="tenant-a").event_id != legacy


_FALLBACK = _FallbackUuid7()


@pytest.mark.parametrize("make", [uuid7, lambda: str(_FALLBACK())], ids=["uuid-utils", "fallback"])
def test_uuid7_is_monotonic_within_a_process(make: Callable[[], str]) -> None:
    """Ids made in one millisecond sort in creation order (RFC 9562 §6.2), and are v7."""
    ids = [make() for _ in range(20_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert {uuid.UUID(i).version for i in ids} == {7}


async def test_two_tenants_same_order_id_both_delivered(
    tmp_path: Path, nats_server: NatsServer, js: JetStreamContext, uid: str
) -> None:
    """tenant-a and tenant-b each complete order 1001: two messages in COMMERCE, two rows in the collector."""
    with running_collector(tmp_path / "c.db") as (server, store):
        settings = Settings(nats_url=nats_server.url, collector_endpoint=server.url, linger_seconds=0.005)
        RUNTIME.install(settings, build_engine(settings, RUNTIME.report_error))
        try:
            ids = [
                record_event("order.completed", id="1001", organization_id=org, data={"revenue": 1.0})
                for org in (f"{uid}-tenant-a", f"{uid}-tenant-b")
            ]
            assert RUNTIME.flush(20)
            assert poll(lambda: len([e for e in store.query(limit=100) if e.id == "1001"]) >= 2, timeout=10)
            rows = [e for e in store.query(limit=100) if e.id == "1001"]
        finally:
            RUNTIME.reset()
    assert len(set(ids)) == 2
    assert sorted(r.organization_id for r in rows) == [f"{uid}-tenant-a", f"{uid}-tenant-b"]
    assert sorted(r.event_id for r in rows) == sorted(ids)
    mine = await stored(js, uid)  # only this test's messages (the module's server is shared)
    assert sorted(orjson.loads(m.data)["organization_id"] for m in mine) == [f"{uid}-tenant-a", f"{uid}-tenant-b"]
    assert sorted((m.headers or {})["Nats-Msg-Id"] for m in mine) == sorted(ids)
