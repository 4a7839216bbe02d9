"""A Flask shop whose handlers record commerce events, each with its HTTP request span's trace id.

No Flask OpenTelemetry instrumentation is needed: a 15-line WSGI middleware opens one SERVER span per
request (continuing an incoming ``traceparent``), and the handlers are decorated with
``@commerce_event``. (Without any request span, ``@commerce_event(..., span=True)`` opens one around the
handler instead.) Run it directly::

    python examples/flask_shop.py --port 5000 --nats-url nats://127.0.0.1:4222 --collector http://127.0.0.1:8091

or zero-code (the middleware uses whatever SDK ``opentelemetry-instrument`` installed)::

    OTEL_SERVICE_NAME=shop OTEL_LOGS_EXPORTER=otlp \\
    OTEL_COMMERCE_NATS_URL=nats://127.0.0.1:4222 opentelemetry-instrument python examples/flask_shop.py

Every response carries ``traceresponse: 00-<trace_id>-<span_id>-<flags>`` (the request span).
"""

import argparse
import signal
import sys
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, abort, request
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from otel_commerce import Order, OrderItem, commerce_event

ORG = "acme-shop"
app = Flask(__name__)
ORDERS: dict[str, Order] = {}  # the shop's "database"
tracer = trace.get_tracer("flask_shop")


class RequestSpans:
    """WSGI middleware: one SERVER span per request, its ids returned in a ``traceresponse`` header."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        carrier = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
        attrs = {"http.request.method": method, "url.path": path}
        with tracer.start_as_current_span(
            f"{method} {path}", context=propagate.extract(carrier), kind=SpanKind.SERVER, attributes=attrs
        ) as span:

            def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                sc = span.get_span_context()
                if sc.is_valid:
                    headers.append(("traceresponse", f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{sc.trace_flags:02x}"))
                span.set_attribute("http.response.status_code", int(status.split()[0]))
                return start_response(status, headers, exc_info)

            return self.wsgi_app(environ, start)


app.wsgi_app = RequestSpans(app.wsgi_app)  # type: ignore[method-assign]


@app.before_request
def name_the_span() -> None:
    if request.url_rule is not None:  # "POST /orders/<order_id>/complete" rather than the raw path
        trace.get_current_span().update_name(f"{request.method} {request.url_rule.rule}")


def _total(items: list[dict[str, Any]]) -> float:
    return round(sum(float(i["price"]) * int(i.get("quantity", 1)) for i in items), 2)


def _stored_order(order_id: str) -> Order:
    order = ORDERS.get(order_id)
    if order is None:
        abort(404, f"no order {order_id}")
    return order


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


# A returned mapping becomes the event's data; an exception records checkout.failed instead.
@app.post("/checkout")
@commerce_event("checkout.started", organization_id=ORG, on_error="checkout.failed")
def start_checkout() -> dict[str, Any]:
    body = request.get_json()
    if not body.get("items"):
        abort(400, "empty cart")
    return {"session_id": body["session_id"], "value": _total(body["items"]), "currency": "USD"}


@app.post("/orders")
@commerce_event("order.created", organization_id=ORG, extract=lambda result: ORDERS[result["order_id"]])
def create_order() -> dict[str, Any]:
    body = request.get_json()
    items = [
        OrderItem(i["product_id"], i.get("product_name", ""), quantity=int(i.get("quantity", 1)), price=i["price"])
        for i in body["items"]
    ]
    order = Order(
        id=body["order_id"],
        user_id=body["user_id"],
        email=body.get("email", ""),
        total=_total(body["items"]),
        currency="USD",
        items=items,
    )
    ORDERS[order.id] = order
    return {"order_id": order.id, "total": order.total}


@app.post("/orders/<order_id>/complete")
@commerce_event("order.completed", organization_id=ORG, extract=lambda result, order_id: ORDERS[order_id])
def complete_order(order_id: str) -> dict[str, Any]:
    order = _stored_order(order_id)
    order.status = "completed"
    return {"order_id": order.id, "status": order.status}


@app.post("/orders/<order_id>/refund")
@commerce_event("order.refunded", organization_id=ORG)
def refund_order(order_id: str) -> dict[str, Any]:
    order = _stored_order(order_id)
    amount = float(request.get_json()["amount"])
    return {"order_id": order.id, "user_id": order.user_id, "refunded_amount": amount, "currency": "USD"}


@app.post("/referrals/claim")
@commerce_event("referral.claimed", organization_id=ORG)
def claim_referral() -> dict[str, Any]:
    body = request.get_json()
    return {
        "referrer_id": body["referrer_id"],
        "referee_id": body["referee_id"],
        "referral_code": body["code"],
        "user_id": body["referee_id"],
    }


def main() -> None:
    """Install an SDK TracerProvider unless one is there, ``configure()``, and serve (SIGTERM exits cleanly)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    import otel_commerce

    parser = argparse.ArgumentParser(description="otel-commerce Flask shop")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--nats-url", help="default: $OTEL_COMMERCE_NATS_URL")
    parser.add_argument("--collector", help="collector base URL; default: $OTEL_COMMERCE_COLLECTOR_ENDPOINT")
    args = parser.parse_args()

    if not isinstance(trace.get_tracer_provider(), TracerProvider):  # not under opentelemetry-instrument
        trace.set_tracer_provider(TracerProvider(resource=Resource.create({"service.name": "flask-shop"})))
    otel_commerce.configure(nats_url=args.nats_url, collector_endpoint=args.collector)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # exit normally: pending events are flushed at exit
    app.run(host=args.host, port=args.port, threaded=True)


if __name__ == "__main__":
    main()
