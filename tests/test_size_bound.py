"""The size rule is a true upper bound: an order ``record_event`` accepts fits the server's ``max_payload``.

Item names of 4-byte UTF-8 characters (emoji) or characters JSON escapes (control characters: 6 bytes,
``"`` and ``\\``: 2) used to be estimated at 3 bytes a character and get through, then be rejected by a
real nats-server (1 MiB ``max_payload``) on the delivery thread.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from otel_fixtures import global_sdk

import otel_commerce
from otel_commerce import EventValidationError, Order, OrderItem, record_event, stats
from otel_commerce._cli._natsserver import NatsServer
from otel_commerce._runtime import RUNTIME


@pytest.fixture
def configured(nats_server: NatsServer) -> Iterator[list[BaseException]]:
    errors: list[BaseException] = []
    global_sdk()  # the suite's global OTel providers (configure() would install its own)
    otel_commerce.configure(nats_url=nats_server.url, spool="off", on_error=lambda e, p: errors.append(e))
    yield errors
    RUNTIME.reset()


def _order(uid: str, name: str, n: int) -> Order:
    items = [OrderItem(product_id=f"p{i}", product_name=name, sku=f"s{i}", quantity=1, price=1.0) for i in range(n)]
    return Order(id=f"o-{uid}-{len(name)}-{n}", total=float(n), currency="JPY", items=items, org_id="acme")


@pytest.mark.parametrize(
    "name", ["🎁🛒" * 140, "\x01" * 280, '"\\' * 140], ids=["emoji", "control-chars", "quote-backslash"]
)
@pytest.mark.parametrize("n", [50, 900])
def test_an_accepted_order_is_never_over_max_payload(
    configured: list[BaseException], uid: str, name: str, n: int
) -> None:
    before = stats()
    try:
        record_event("order.completed", organization_id="acme", order=_order(uid, name, n))
    except EventValidationError as exc:
        assert n == 900 and "too large" in str(exc)  # refused at the call: fine
        return
    assert otel_commerce.flush(15), configured
    after = stats()
    assert after.get("rejected", 0) == before.get("rejected", 0) and configured == []
    assert after["exported"] == before.get("exported", 0) + 1
