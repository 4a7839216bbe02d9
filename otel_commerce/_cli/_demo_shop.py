"""The demo's small shop: decorated handlers, each called inside a request span (as a web framework would).

Every request is a SERVER span of its own trace; the checkout request records two events (checkout
started, order created) in one trace, which is the one ``otel-commerce trace`` is suggested for.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Tracer

from .._model import Order, OrderItem
from .._record import commerce_event

__all__ = ["ORGANIZATION", "Expected", "Shop"]

ORGANIZATION = "demo-shop"
CURRENCY = "USD"
_CATALOG = (
    OrderItem(product_id="sku-mug", product_name="Tracing mug", sku="MUG-1", quantity=1, price=12.5),
    OrderItem(product_id="sku-tee", product_name="Span tee", sku="TEE-2", quantity=2, price=20.0),
    OrderItem(product_id="sku-sticker", product_name="Context sticker", sku="STK-3", quantity=3, price=1.5),
)


@dataclass(frozen=True, slots=True)
class Expected:
    """An event the shop recorded: what must arrive in the stream and in the collector."""

    type: str
    id: str
    trace_id: str
    span_id: str
    request: str


# --------------------------------------------------------------------------- handlers
@commerce_event("checkout.started", organization_id=ORGANIZATION)
def start_checkout(session_id: str, items: list[OrderItem]) -> dict[str, Any]:
    return {"session_id": session_id, "value": _total(items), "currency": CURRENCY}


@commerce_event("order.created", organization_id=ORGANIZATION)
def create_order(order_id: str, user_id: str, items: list[OrderItem]) -> Order:
    return Order(
        id=order_id,
        user_id=user_id,
        email=f"{user_id}@example.com",
        total=_total(items),
        currency=CURRENCY,
        items=list(items),
        status="created",
    )


@commerce_event("order.completed", organization_id=ORGANIZATION)
def complete_order(order: Order) -> Order:
    order.status = "completed"
    return order


@commerce_event("order.refunded", organization_id=ORGANIZATION)
def refund_order(order: Order, amount: float) -> dict[str, Any]:
    return {"order_id": order.id, "user_id": order.user_id, "refunded_amount": amount, "currency": CURRENCY}


@commerce_event("referral.claimed", organization_id=ORGANIZATION)
def claim_referral(referrer_id: str, referee_id: str, code: str) -> dict[str, Any]:
    return {"referrer_id": referrer_id, "referee_id": referee_id, "referral_code": code, "user_id": referee_id}


def _total(items: list[OrderItem]) -> float:
    return round(sum(i.price * i.quantity for i in items), 2)


# --------------------------------------------------------------------------- traffic
class Shop:
    """Drives the handlers like HTTP requests; ``requests()`` yields one callable per request."""

    def __init__(self, run_id: str, orders: int, tracer: Tracer) -> None:
        self.run_id = run_id
        self.orders = orders
        self.tracer = tracer
        self.expected: list[Expected] = []
        self.checkout_traces: list[str] = []
        self.placed: list[Order] = []

    @contextmanager
    def _request(self, method: str, route: str) -> Iterator[str]:
        name = f"{method} {route}"
        attrs = {"http.request.method": method, "http.route": route}
        with self.tracer.start_as_current_span(name, kind=SpanKind.SERVER, attributes=attrs):
            yield name

    def _expect(self, event_type: str, entity_id: str, request: str) -> None:
        sc = trace.get_current_span().get_span_context()
        self.expected.append(
            Expected(event_type, entity_id, format(sc.trace_id, "032x"), format(sc.span_id, "016x"), request)
        )

    def requests(self) -> list[Callable[[], None]]:
        """The shop's traffic: per order a checkout and a payment, then one refund and one referral."""
        plan: list[Callable[[], None]] = []
        for n in range(self.orders):
            plan += [functools.partial(self._checkout, n), functools.partial(self._pay, n)]
        if self.orders:
            plan += [functools.partial(self._refund, 0), functools.partial(self._referral, 0)]
        return plan

    def _checkout(self, n: int) -> None:
        session_id = f"sess-{self.run_id}-{n}"
        order_id = f"ord-{self.run_id}-{n}"
        user_id = f"user-{self.run_id}-{n}"
        items = [_CATALOG[n % len(_CATALOG)], _CATALOG[(n + 1) % len(_CATALOG)]]
        with self._request("POST", "/checkout") as req:
            start_checkout(session_id, items)
            self._expect("checkout.started", session_id, req)
            order = create_order(order_id, user_id, items)
            self._expect("order.created", order_id, req)
            self.checkout_traces.append(self.expected[-1].trace_id)
        self.placed.append(order)

    def _pay(self, n: int) -> None:
        order = self.placed[n]
        with self._request("POST", "/orders/{order_id}/pay") as req:
            complete_order(order)
            self._expect("order.completed", order.id, req)

    def _refund(self, n: int) -> None:
        order = self.placed[n]
        with self._request("POST", "/orders/{order_id}/refund") as req:
            refund_order(order, round(order.total / 2, 2))
            self._expect("order.refunded", order.id, req)

    def _referral(self, n: int) -> None:
        order = self.placed[n]
        referee = f"friend-{self.run_id}"
        with self._request("POST", "/referrals/claim") as req:
            claim_referral(order.user_id, referee, f"REF-{self.run_id}")
            self._expect("referral.claimed", referee, req)
