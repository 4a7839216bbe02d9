"""A FastAPI shop whose handlers record commerce events, each with its HTTP request span's trace id.

Zero-code: ``opentelemetry-instrument`` sets up the SDK, the FastAPI instrumentation opens the request
span and the ``commerce`` instrumentor adds our processor to the pipeline your distro (here the official
``opentelemetry-distro``) built, which delivers the events (to JetStream and/or the collector)::

    OTEL_SERVICE_NAME=shop OTEL_LOGS_EXPORTER=otlp \\
    OTEL_COMMERCE_NATS_URL=nats://127.0.0.1:4222 OTEL_COMMERCE_COLLECTOR_ENDPOINT=http://127.0.0.1:8091 \\
    opentelemetry-instrument uvicorn --app-dir examples fastapi_shop:app --port 8000

Or run it directly: it installs an SDK ``TracerProvider``, instruments the app and calls
``otel_commerce.configure()``::

    python examples/fastapi_shop.py --port 8000 --nats-url nats://127.0.0.1:4222 --collector http://127.0.0.1:8091

Every response carries ``traceresponse: 00-<trace_id>-<span_id>-<flags>``: the request span the events
were recorded in (compare with ``otel-commerce trace <trace_id>``).
"""

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from opentelemetry import trace
from pydantic import BaseModel, Field

from otel_commerce import Order, OrderItem, commerce_event

ORG = "acme-shop"
app = FastAPI(title="otel-commerce FastAPI shop")
ORDERS: dict[str, Order] = {}  # the shop's "database"


class Item(BaseModel):
    product_id: str
    product_name: str = ""
    quantity: int = Field(default=1, ge=1)
    price: float = Field(ge=0)


class CheckoutIn(BaseModel):
    session_id: str
    items: list[Item]


class OrderIn(BaseModel):
    order_id: str
    user_id: str
    email: str = ""
    items: list[Item]


class RefundIn(BaseModel):
    amount: float = Field(gt=0)


class ReferralIn(BaseModel):
    referrer_id: str
    referee_id: str
    code: str


def _total(items: list[Item]) -> float:
    return round(sum(i.price * i.quantity for i in items), 2)


@app.middleware("http")
async def trace_response_header(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Tell the client which trace its request (and its commerce events) belong to."""
    response = await call_next(request)
    sc = trace.get_current_span().get_span_context()
    if sc.is_valid:
        response.headers["traceresponse"] = f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{int(sc.trace_flags):02x}"
    return response


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


# A returned mapping becomes the event's data; an exception records checkout.failed instead.
@app.post("/checkout")
@commerce_event("checkout.started", organization_id=ORG, on_error="checkout.failed")
async def start_checkout(body: CheckoutIn) -> dict[str, Any]:
    if not body.items:
        raise HTTPException(status_code=400, detail="empty cart")
    return {"session_id": body.session_id, "value": _total(body.items), "currency": "USD"}


def _order_of(result: dict[str, Any], body: OrderIn) -> Order:
    """``extract=``: the event is made from the stored Order (items, email), not from the response."""
    return ORDERS[body.order_id]


@app.post("/orders", status_code=201)
@commerce_event("order.created", organization_id=ORG, extract=_order_of)
def create_order(body: OrderIn) -> dict[str, Any]:  # a sync handler: FastAPI runs it in a thread, same span
    items = [OrderItem(i.product_id, i.product_name, quantity=i.quantity, price=i.price) for i in body.items]
    ORDERS[body.order_id] = Order(
        id=body.order_id, user_id=body.user_id, email=body.email, total=_total(body.items), currency="USD", items=items
    )
    return {"order_id": body.order_id, "total": ORDERS[body.order_id].total}


def _stored_order(order_id: str) -> Order:
    order = ORDERS.get(order_id)
    if order is None:
        raise HTTPException(status_code=404, detail=f"no order {order_id}")
    return order


@app.post("/orders/{order_id}/complete")
@commerce_event("order.completed", organization_id=ORG, extract=lambda result, order_id: ORDERS[order_id])
async def complete_order(order_id: str) -> dict[str, Any]:
    order = _stored_order(order_id)
    order.status = "completed"
    return {"order_id": order.id, "status": order.status}


@app.post("/orders/{order_id}/refund")
@commerce_event("order.refunded", organization_id=ORG)
async def refund_order(order_id: str, body: RefundIn) -> dict[str, Any]:
    order = _stored_order(order_id)
    return {"order_id": order.id, "user_id": order.user_id, "refunded_amount": body.amount, "currency": "USD"}


@app.post("/referrals/claim")
@commerce_event("referral.claimed", organization_id=ORG)
async def claim_referral(body: ReferralIn) -> dict[str, Any]:
    return {
        "referrer_id": body.referrer_id,
        "referee_id": body.referee_id,
        "referral_code": body.code,
        "user_id": body.referee_id,
    }


def main() -> None:
    """Run without ``opentelemetry-instrument``: SDK + FastAPI instrumentation + ``otel_commerce.configure()``."""
    import uvicorn
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    import otel_commerce

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--nats-url", help="default: $OTEL_COMMERCE_NATS_URL")
    parser.add_argument("--collector", help="collector base URL; default: $OTEL_COMMERCE_COLLECTOR_ENDPOINT")
    args = parser.parse_args()

    if not isinstance(trace.get_tracer_provider(), TracerProvider):  # not under opentelemetry-instrument
        trace.set_tracer_provider(TracerProvider(resource=Resource.create({"service.name": "fastapi-shop"})))
    if not getattr(app, "_is_instrumented_by_opentelemetry", False):
        FastAPIInstrumentor.instrument_app(app)
    otel_commerce.configure(nats_url=args.nats_url, collector_endpoint=args.collector)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
