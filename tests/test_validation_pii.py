"""Issue 12: what record_event accepts every hop can deliver; PII by token, type and field."""

from __future__ import annotations

import http.server
import math
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from otel_fixtures import OtelSdk, global_sdk
from polling import poll

import otel_commerce
from otel_commerce import (
    Client,
    CommerceEvent,
    EventValidationError,
    Order,
    OrderItem,
    Settings,
    commerce_event,
    record_event,
)
from otel_commerce._model._catalog import collector_from_event
from otel_commerce._model._envelope import MAX_DEPTH
from otel_commerce._model._hashing import capi_hash, sha256_hex
from otel_commerce._record import build_pending
from otel_commerce._record._pii import apply_pii, mask_id, pii_kind, scrub_text
from otel_commerce._runtime import RUNTIME
from otel_commerce.testing import CapturedEvents, capture_events


@pytest.fixture
def sdk() -> Iterator[OtelSdk]:
    s = global_sdk()
    s.clear()
    yield s
    s.clear()


@pytest.fixture
def events(sdk: OtelSdk) -> Iterator[CapturedEvents]:
    RUNTIME.install(Settings(), None)
    with capture_events() as captured:
        yield captured
    RUNTIME.reset()


def _nested(depth: int) -> dict[str, Any]:
    d: dict[str, Any] = {}
    x = d
    for _ in range(depth - 1):
        x["a"] = {}
        x = x["a"]
    return d


# --------------------------------------------------------------------------- 1. every encoder
REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"n": 2**63}, "64 bits"),
    ({"n": -(2**63) - 1}, "64 bits"),
    ({"n": 10**5000}, "64 bits"),  # str() of it would raise ValueError: never build it
    ({"x": [math.nan]}, "finite"),
    ({"x": {"y": -math.inf}}, "finite"),
    ({"d": Decimal("NaN")}, "finite"),
    ({"d": Decimal("1e400")}, "finite"),  # finite Decimal, infinite float
    ({"s": "a\ud800b"}, "surrogate"),
    ({"k": {"\udfff": 1}}, "surrogate"),
    ({1: "int key"}, "non-string key"),
    ({"k": {(1, 2): "tuple key"}}, "non-string key"),
    ({"o": object()}, "not JSON-serialisable"),
    ({"b": b"bytes"}, "not JSON-serialisable"),
    ({"s": {1, 2}}, "not JSON-serialisable"),
    ({"deep": _nested(MAX_DEPTH)}, "nested"),
    ({"unix_ms": 1}, "reserved"),
    ({"event_id": "x"}, "reserved"),
    ({"trace_id": "x"}, "reserved"),
    ({"blob": "x" * 1_100_000}, "too large"),
    ({"blob": "\x00" * 200_000}, "too large"),  # 1.2 MB once escaped
]


@pytest.mark.parametrize(("data", "match"), REFUSED, ids=[m + str(i) for i, (_, m) in enumerate(REFUSED)])
def test_what_no_encoder_can_encode_is_refused_at_the_call(
    events: CapturedEvents, data: dict[str, Any], match: str
) -> None:
    with pytest.raises(EventValidationError, match=match):
        record_event("loyalty.points", id="v1", organization_id="acme", data=data)
    assert list(events) == []


def test_boundaries_are_accepted_and_decimal_becomes_float(events: CapturedEvents) -> None:
    data = {
        "max": 2**63 - 1,
        "min": -(2**63),
        "deep": _nested(MAX_DEPTH - 1),
        "price": Decimal("19.99"),
        "proxy": MappingProxyType({"a": (1, Decimal("2"))}),
        "s": "é✓𝄞",
    }
    record_event("loyalty.points", id="v2", organization_id="acme", data=data)
    [ev] = list(events)
    assert ev.data["price"] == 19.99 and type(ev.data["price"]) is float
    assert ev.data["proxy"] == {"a": [1, 2.0]}  # JSON-shaped: the frozen copy makes tuples lists
    orjson.dumps(ev.to_dict())


def test_size_bound_is_configurable(events: CapturedEvents) -> None:
    RUNTIME.install(Settings(max_event_bytes=10_000), None)
    with pytest.raises(EventValidationError, match="too large"):
        record_event("loyalty.points", id="v3", organization_id="acme", data={"s": "x" * 20_000})
    assert Settings.from_env({"OTEL_COMMERCE_MAX_EVENT_BYTES": "5000"}).max_event_bytes == 5000


def test_decorated_handler_returning_a_decimal_total_keeps_its_order(events: CapturedEvents) -> None:
    @commerce_event("order.completed", organization_id="acme")
    def pay() -> Order:
        return Order(id="dec-1", total=Decimal("12.34"), currency="usd")  # type: ignore[arg-type]

    pay()
    [ev] = list(events)
    assert ev.data["revenue"] == 12.34 and ev.data["currency"] == "USD"


def test_client_emitters_raise_our_error_only() -> None:
    c = Client("http://127.0.0.1:9")
    try:
        for call in (
            lambda: c.emit_referral_credit_granted("o", "u", "r", 10**400, "USD"),  # OverflowError before
            lambda: c.emit_referral_credit_granted("o", "u\ud800", "r", 1.0, "USD"),  # UnicodeEncodeError
            lambda: c.emit_referral_tier_upgraded("o", "u", "a", "b", 2**40),
            lambda: c.emit_order_completed(Order("o1", items=[OrderItem("p", quantity=2**32)])),
            lambda: c.emit_raw({"event": "x", "quantity": -1}),
            lambda: c.emit_raw({"event": "x", "revenue": 1e15}),
            lambda: c.emit_raw({"event": "x", "properties": {"a": 2**64}}),
        ):
            with pytest.raises(EventValidationError):
                call()
    finally:
        c.close(0.1)


def test_collector_revenue_is_rounded_to_four_decimals(events: CapturedEvents) -> None:
    record_event("order.completed", organization_id="acme", data={"order_id": "r4", "revenue": 1.234567})
    [ev] = list(events)
    assert collector_from_event(ev)["revenue"] == 1.2346


async def test_publisher_publish_refuses_nan_instead_of_storing_null() -> None:
    from otel_commerce import Publisher

    class NoJs:  # never reached: the check comes first
        pass

    ev = CommerceEvent(
        id="o",
        type="loyalty.x",
        timestamp=__import__("datetime").datetime.now(),
        organization_id="a",
        data={"v": math.nan},
    )
    with pytest.raises(EventValidationError, match="finite"):
        await Publisher(NoJs()).publish("commerce.loyalty.x", ev)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- 2. catalog fields
@pytest.mark.parametrize(
    ("type_", "data", "match"),
    [
        ("order.completed", {"order_id": "o", "revenue": "10"}, "must be a number"),
        ("order.completed", {"order_id": "o", "revenue": -1}, "between 0"),
        ("order.completed", {"order_id": "o", "revenue": 1e15}, "between 0"),
        ("order.completed", {"order_id": "o", "revenue": 1, "currency": "dollars"}, "ISO 4217"),
        ("order.completed", {"order_id": "o", "revenue": 1, "currency": "ZZZ"}, "ISO 4217"),
        ("order.completed", {"revenue": 1}, "needs field 'order_id'"),
        ("referral.tier_upgraded", {"referral_count": -1}, "integer"),
        ("order.complete", {"order_id": "o"}, "did you mean 'order.completed'"),
        ("order.returned", {"order_id": "o"}, "did you mean 'order.refunded'"),
    ],
)
def test_catalog_fields_on_record_event(events: CapturedEvents, type_: str, data: dict[str, Any], match: str) -> None:
    with pytest.raises(EventValidationError, match=match):
        record_event(type_, organization_id="acme", user_id="u", data=data)


def test_currency_is_upper_cased_and_custom_types_register(
    events: CapturedEvents, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_event("order.completed", organization_id="acme", data={"order_id": "c1", "revenue": 1, "currency": "eur"})
    otel_commerce.register_event_type("order.shipped")
    record_event("order.shipped", id="s1", organization_id="acme", data={"carrier": "ups"})
    record_event("loyalty.anything", id="l1", organization_id="acme")  # other namespaces stay free
    assert next(e.data.get("currency") for e in list(events)) == "EUR"
    assert [e.type for e in list(events)] == ["order.completed", "order.shipped", "loyalty.anything"]


def test_decorator_refusal_is_logged_counted_and_passed_to_on_error(
    events: CapturedEvents, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[BaseException, Any]] = []
    RUNTIME.on_error.append(lambda exc, p: seen.append((exc, p)))
    before = RUNTIME.counters["errors"]

    @commerce_event("order.completed", organization_id="acme")
    def pay() -> dict[str, Any]:
        return {"order_id": "bad-1", "revenue": "12.00"}

    assert pay() == {"order_id": "bad-1", "revenue": "12.00"}
    assert list(events) == [] and RUNTIME.counters["errors"] == before + 1
    [(exc, pending)] = seen
    assert isinstance(exc, EventValidationError) and "revenue" in str(exc)
    assert (
        pending.event.id == "" and pending.event.data["order_id"] == "bad-1" and pending.event.type == "order.completed"
    )
    assert "could not record order.completed" in caplog.text


# --------------------------------------------------------------------------- 3. generated inputs
_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=8),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.binary(max_size=3),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
)
_keys = st.one_of(
    st.text(max_size=6), st.integers(0, 3), st.sampled_from(["unix_ms", "revenue", "currency", "email", "id"])
)
_values = st.recursive(
    _leaf,
    lambda ch: st.one_of(
        st.lists(ch, max_size=3),
        st.dictionaries(_keys, ch, max_size=3),
        st.builds(MappingProxyType, st.dictionaries(st.text(max_size=4), ch, max_size=2)),
    ),
    max_leaves=12,
)
_types = st.sampled_from(
    ["order.completed", "order.refunded", "loyalty.points", "referral.tier_upgraded", "order.complete"]
)


def test_generated_inputs_accepted_means_deliverable_refused_means_our_error(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from otel_commerce.collector import EventStore, create_app

    RUNTIME.install(Settings(), None)
    lp = LoggerProvider(shutdown_on_exit=False)
    mem = InMemoryLogRecordExporter()
    lp.add_log_record_processor(SimpleLogRecordProcessor(mem))
    logger = lp.get_logger("gen")
    accepted: list[Any] = []
    counts = {"accepted": 0, "refused": 0}

    @settings(
        max_examples=2000, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(_types, st.dictionaries(_keys, _values, max_size=4))
    def run(type_: str, data: dict[Any, Any]) -> None:
        try:
            n = counts["accepted"] + counts["refused"]
            pending = build_pending(type_, id=f"g-{n}", organization_id="acme", data=data)  # type: ignore[arg-type]
        except EventValidationError:
            counts["refused"] += 1
            return
        ev = pending.event
        assert ev is not None
        counts["accepted"] += 1
        orjson.dumps(ev.to_dict())
        mem.clear()
        logger.emit(
            event_name="commerce." + ev.type, body=__import__("otel_commerce._record", fromlist=["x"]).envelope_body(ev)
        )
        accepted.append(encode_logs(mem.get_finished_logs()).SerializeToString())

    run()
    # both branches well exercised (the split depends on the hypothesis version: 164-183 accepted of 2,000 on
    # 6.170, more on 6.155; derandomized, so one version always draws the same inputs)
    assert counts["accepted"] >= 100 and counts["refused"] >= 100 and counts["accepted"] + counts["refused"] >= 2000
    store = EventStore(tmp_path / "gen.db")
    try:
        with TestClient(create_app(store)) as http:
            for body in accepted:
                r = http.post("/v1/logs", content=body, headers={"content-type": "application/x-protobuf"})
                assert r.status_code == 200, r.text
        assert store.count() == len(accepted)
    finally:
        store.close()


# --------------------------------------------------------------------------- 4. PII
@pytest.mark.parametrize(
    "key",
    [
        "email",
        "e_mail",
        "e-mail",
        "customerEmail",
        "emails",
        "phone",
        "phone_number",
        "mobile",
        "ip",
        "ip_address",
        "client_ip",
        "remote_addr",
        "x-forwarded-for",
        "user_agent",
        "userAgent",
        "X-Real-IP",
        "billingPhone",
        "mail",
        "customer_mail",
        "email1",
        "email_2",
        "cell",
        "cellphone",
        "ipv4",
        "ip_address_v4",
        "ipv4_address",
        "ipV6",
    ],
)
def test_pii_keys_by_token(key: str) -> None:
    assert pii_kind(key) in ("em", "ph", "ip", "ua")


_RAW_EMAIL, _RAW_PHONE, _RAW_IP = "alice@example.com", "+1 415 555 0100", "203.0.113.7"


def test_suffixed_keys_and_phone_shaped_ids_reach_no_otel_signal_raw(sdk: OtelSdk, events: CapturedEvents) -> None:
    """Digit / ``v4``-``v6`` suffixes are ignored (``email1``, ``ip_address_v4``); ``mail`` and ``cell`` are
    tokens; phone-shaped ``id`` / ``user_id`` / ``session_id`` are digested in the log records like
    e-mail- and IP-shaped ones, while the delivered envelope keeps the raw ids."""
    keys = {
        "mail": _RAW_EMAIL, "customer_mail": _RAW_EMAIL, "email1": _RAW_EMAIL, "email_2": _RAW_EMAIL,
        "cell": _RAW_PHONE, "cellphone": _RAW_PHONE, "ip_address_v4": _RAW_IP, "ipv4_address": _RAW_IP,
    }  # fmt: skip
    for i, (key, value) in enumerate(keys.items()):
        record_event("loyalty.probe", organization_id="acme", id=f"pii-sfx-{i}", data={key: value})
    record_event("loyalty.probe", organization_id="acme", id="+14155550100", user_id="+44 20 7946 0958",
                 session_id="+1 (415) 555-0199")  # fmt: skip
    logs = [r.log_record for r in sdk.logs.get_finished_logs()]
    assert len(logs) == len(keys) + 1
    wire = repr([(dict(r.attributes or {}), r.body) for r in logs])
    for raw in (_RAW_EMAIL, _RAW_PHONE, _RAW_IP, "14155550100", "+44 20 7946 0958", "555-0199"):
        assert raw not in wire, raw
    last = events[-1]  # the envelope keeps the raw ids (event_id is computed from them)
    assert (last.id, last.user_id, last.session_id) == ("+14155550100", "+44 20 7946 0958", "+1 (415) 555-0199")
    assert dict(logs[-1].attributes or {})["commerce.id"] == mask_id("+14155550100") != "+14155550100"


@pytest.mark.parametrize(
    "key",
    [
        "email_verified",
        "phone_count",
        "shipping",
        "zip",
        "tip",
        "recipient",
        "equipment",
        "telemetry",
        "membership",
        "ipsum",
        "skip",
        "description",
    ],
)
def test_not_pii_by_substring(key: str) -> None:
    data = {key: "a@b.com" if key not in ("email_verified", "phone_count") else 2}
    assert apply_pii(data, "hash") == data


def test_pii_by_type_and_container() -> None:
    out = apply_pii(
        {
            "phone": 15551234567,
            "emails": ["A@b.com", ("c@d.com",)],
            "x": MappingProxyType({"ip": "1.2.3.4"}),
            "email_verified": True,
            "phone_ok": None,
            "ip": 1.5,
        },
        "hash",
    )
    assert out["phone"] == capi_hash("ph", "15551234567")
    assert out["emails"] == [sha256_hex("a@b.com"), [sha256_hex("c@d.com")]]
    assert out["x"] == {"ip": capi_hash("ip", "") or __import__("hashlib").sha256(b"1.2.3.4").hexdigest()}
    assert out["email_verified"] is True and out["ip"] == 1.5
    assert apply_pii({"emails": ["a@b.com"], "n": MappingProxyType({"phone": 1})}, "drop") == {"n": {}}


def test_error_text_is_scrubbed() -> None:
    text = (
        "card of bob@example.com declined from 10.1.2.3 / 2001:db8::1, call +1 (555) 123-4567; order 1001 at 12:30:45"
    )
    assert scrub_text(text) == "card of [email] declined from [ip] / [ip], call [phone]; order 1001 at 12:30:45"


def test_upper_case_digest_is_not_hashed_twice() -> None:
    d = sha256_hex("a@b.com")
    assert capi_hash("em", f"  {d.upper()} ") == d


# --------------------------------------------------------------------------- OTLP wire
class _Receiver(http.server.BaseHTTPRequestHandler):
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        n = int(self.headers.get("content-length") or 0)
        _Receiver.bodies.append(self.rfile.read(n))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_fourteen_events_through_a_real_otlp_exporter_carry_no_raw_pii(sdk: OtelSdk) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Receiver.bodies = []
    exporter = OTLPLogExporter(endpoint=f"http://127.0.0.1:{server.server_port}/v1/logs")
    sdk.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    RUNTIME.install(Settings(), None)
    raw = [
        "ann@example.com",
        "Bob@Example.org",
        "+1 (555) 201-3344",
        "5552013344",
        "203.0.113.9",
        "2001:db8::7",
        "Mozilla/5.0 (X11) Gecko",
        "carl@example.net",
        "dora@example.com",
        "198.51.100.4",
        "erin@example.com",
        "frank@example.com",
    ]
    tracer = trace.get_tracer("pii")
    try:
        with tracer.start_as_current_span("pii"):
            record_event("loyalty.a", id="p1", organization_id="acme", data={"customer": {"email": raw[0]}})
            record_event("loyalty.b", id="p2", organization_id="acme", data={"emails": [raw[1]]})
            record_event("loyalty.c", id="p3", organization_id="acme", data={"billingPhone": raw[2]})
            record_event("loyalty.d", id="p4", organization_id="acme", data={"phone": int(raw[3])})
            record_event(
                "loyalty.e", id="p5", organization_id="acme", data={"x": MappingProxyType({"clientIp": raw[4]})}
            )
            record_event("loyalty.f", id="p6", organization_id="acme", data={"remote_addr": (raw[5],)})
            record_event("loyalty.g", id="p7", organization_id="acme", data={"userAgent": raw[6]})
            record_event("loyalty.h", id=raw[7], organization_id="acme")
            record_event("loyalty.i", id="p9", organization_id="acme", user_id=raw[8])
            record_event("loyalty.j", id="p10", organization_id="acme", session_id=raw[9])
            record_event("loyalty.k", id="p11", organization_id="acme", data={"referee_id": raw[10]})
            record_event("loyalty.l", id="p12", organization_id="acme", data={"items": [{"e-mail": raw[11]}]})

            @commerce_event("order.completed", on_error="checkout.failed", organization_id="acme")
            def pay(session_id: str, fail: bool) -> Order:
                if fail:
                    raise RuntimeError("declined for gina@example.com, phone +44 20 7946 0958")
                return Order(id="o-14", user_id="hal@example.com", email="Ivy@Example.com", total=5.0, currency="usd")

            pay("s13", False)
            with pytest.raises(RuntimeError):
                pay("s14", True)
        poll(lambda: len(_Receiver.bodies) >= 14, timeout=10)  # the assertions below say what arrived
    finally:
        exporter.shutdown()
        server.shutdown()
        RUNTIME.reset()
    wire = b"".join(_Receiver.bodies)
    assert len(_Receiver.bodies) >= 14 and b"commerce.loyalty.l" in wire and b"commerce.checkout.failed" in wire
    for value in [*raw, "hal@example.com", "Ivy@Example.com", "ivy@example.com", "gina@example.com", "7946 0958"]:
        assert value.encode() not in wire, value
