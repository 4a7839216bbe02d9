"""Our collector never answers 5xx to bad input (issue 16): edge inputs and hypothesis-generated requests.

A real uvicorn server on 127.0.0.1 and a real SQLite store; the examples are bounded (a few seconds).
"""

from __future__ import annotations

import gzip
import string
from collections.abc import Iterator
from datetime import timedelta, timezone
from typing import Any

import httpx
import orjson
import pytest
from collector_server import CollectorServer, running_collector
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_commerce.collector import EventStore


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CollectorServer, EventStore, httpx.Client]]:
    with (
        running_collector(tmp_path_factory.mktemp("fuzz") / "fuzz.db") as (server, store),
        httpx.Client(base_url=server.url, timeout=10) as http,
    ):
        yield server, store, http


def _deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


# --------------------------------------------------------------------------- named edge inputs
def test_edge_inputs_are_4xx_naming_the_index_and_good_neighbours_are_stored(
    served: tuple[CollectorServer, EventStore, httpx.Client],
) -> None:
    """Far-future offsets, JSON nested hundreds deep: a 400 naming the refused index; the others stored."""
    _server, store, http = served
    bad_ts = {"event": "edge", "timestamp": "9999-12-31T23:59:59-14:00"}
    r = http.post("/event", json=bad_ts)
    assert r.status_code == 400 and "timestamp" in r.json()["error"]
    deep = b'{"event":"edge","properties":{"a":' + _deep(300) + b"}}"
    r = http.post("/event", content=deep, headers={"content-type": "application/json"})
    assert r.status_code == 400
    batch = (
        b'{"events":[{"event":"edge","event_id":"edge-good-1"},'
        + orjson.dumps(bad_ts)
        + b',{"event":"edge","properties":{"a":'
        + _deep(300)
        + b'}},{"event":"edge","event_id":"edge-good-2"}]}'
    )
    r = http.post("/events", content=batch, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert [item["index"] for item in r.json()["rejected"]] == [1, 2]
    assert store.get("edge-good-1") is not None and store.get("edge-good-2") is not None


def test_multi_member_gzip_bodies_are_accepted(served: tuple[CollectorServer, EventStore, httpx.Client]) -> None:
    """A body made of two gzip members (RFC 1952: one file) is decompressed whole."""
    _server, store, http = served
    body = gzip.compress(b'{"events":[{"event":"gz","event_id":"gz-multi-1"},') + gzip.compress(
        b'{"event":"gz","event_id":"gz-multi-2"}]}'
    )
    r = http.post("/events", content=body, headers={"content-type": "application/json", "content-encoding": "gzip"})
    assert r.status_code == 200, r.text
    assert store.get("gz-multi-1") is not None and store.get("gz-multi-2") is not None
    r = http.post(
        "/events", content=body[:-5], headers={"content-type": "application/json", "content-encoding": "gzip"}
    )
    assert r.status_code == 400  # a truncated member is still refused


def test_otlp_record_out_of_range_is_partial_success(served: tuple[CollectorServer, EventStore, httpx.Client]) -> None:
    """OTLP: a commerce record whose timestamp cannot be stored is counted in partial_success; its neighbour stored."""
    _server, store, http = served

    def rec(event_id: str, ts: str) -> dict[str, Any]:
        kv = [("type", "order.completed"), ("event_id", event_id), ("timestamp", ts), ("id", "o-1")]
        return {
            "eventName": "commerce.order.completed",
            "body": {"kvlistValue": {"values": [{"key": k, "value": {"stringValue": v}} for k, v in kv]}},
        }

    doc = {
        "resourceLogs": [
            {
                "scopeLogs": [
                    {
                        "logRecords": [
                            rec("otlp-edge-bad", "9999-12-31T23:59:59-14:00"),
                            rec("otlp-edge-good", "2024-01-01T00:00:00Z"),
                        ]
                    }
                ]
            }
        ]
    }
    r = http.post("/v1/logs", json=doc)
    assert r.status_code == 200
    assert r.json()["partialSuccess"]["rejectedLogRecords"] == "1"
    assert store.get("otlp-edge-good") is not None and store.get("otlp-edge-bad") is None


# --------------------------------------------------------------------------- generated inputs
_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
_json = st.recursive(
    _json_leaf, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=12
)
_edge_timestamps = st.sampled_from(["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "2024-13-01T00:00:00Z"])
_timestamps = st.one_of(
    _edge_timestamps,
    _edge_timestamps,
    st.datetimes(
        timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=-14)), timezone(timedelta(hours=14))])
    ).map(lambda d: d.isoformat()),
    st.text(max_size=30),
    _json,
)
_hex = st.text(alphabet="0123456789abcdefABCDEF", min_size=0, max_size=34)
_hanzo_event = st.fixed_dictionaries(
    {"event": st.one_of(st.sampled_from(["order_completed", "product_viewed", "x"]), st.text(max_size=20), _json)},
    optional={
        "timestamp": _timestamps,
        "properties": st.one_of(
            st.dictionaries(
                st.sampled_from(["event_id", "trace_id", "span_id", "id", "currency", "a"]),
                st.one_of(_hex, _json),
                max_size=4,
            ),
            _json,
        ),
        "revenue": _json,
        "quantity": _json,
        "event_id": st.one_of(st.text(max_size=250), _json),
        "organization_id": st.one_of(st.text(max_size=10), _json),
        "distinct_id": st.one_of(st.text(max_size=10), _json),
        "trace_id": _hex,
        "span_id": _hex,
    },
)
#: Mostly-valid events: a known name and a timestamp, so that the deeper checks are reached.
_plausible_event = st.fixed_dictionaries(
    {"event": st.sampled_from(["order_completed", "product_viewed", "thing"]), "timestamp": _timestamps},
    optional={
        "event_id": st.uuids().map(str),
        "properties": st.dictionaries(st.sampled_from(["currency", "a", "b"]), _json, max_size=3),
        "revenue": st.floats(allow_nan=False, allow_infinity=False),
    },
)
_events = st.one_of(_plausible_event, _plausible_event, _hanzo_event, _json)
_any_value: st.SearchStrategy[dict[str, Any]] = st.recursive(
    st.one_of(
        st.builds(lambda s: {"stringValue": s}, st.text(max_size=20)),
        st.builds(lambda i: {"intValue": str(i)}, st.integers(min_value=-(2**63), max_value=2**63 - 1)),
        st.builds(lambda f: {"doubleValue": f}, st.floats(allow_nan=False, allow_infinity=False)),
        st.builds(lambda b: {"boolValue": b}, st.booleans()),
        _json,
    ),
    lambda c: st.one_of(
        st.builds(lambda vs: {"arrayValue": {"values": vs}}, st.lists(c, max_size=3)),
        st.builds(
            lambda kvs: {"kvlistValue": {"values": [{"key": k, "value": v} for k, v in kvs]}},
            st.lists(
                st.tuples(st.sampled_from(["type", "event_id", "timestamp", "id", "data", "items", "x"]), c), max_size=4
            ),
        ),
    ),
    max_leaves=10,
)
_log_record = st.fixed_dictionaries(
    {
        "eventName": st.one_of(
            st.sampled_from(["commerce.order.completed", "commerce.x y", "other"]), st.text(max_size=20)
        )
    },
    optional={
        "body": _any_value,
        "attributes": st.lists(
            st.builds(
                lambda k, v: {"key": k, "value": v},
                st.text(alphabet=string.ascii_lowercase + ".", max_size=20),
                _any_value,
            ),
            max_size=3,
        ),
        "timeUnixNano": st.one_of(st.integers(min_value=0, max_value=2**64 - 1).map(str), _json),
        "traceId": _hex,
        "spanId": _hex,
    },
)
_otlp = st.one_of(
    st.builds(
        lambda recs: {"resourceLogs": [{"scopeLogs": [{"logRecords": recs}]}]}, st.lists(_log_record, max_size=3)
    ),
    _json,
)
_FUZZ = settings(
    database=None,
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _post(http: httpx.Client, path: str, body: bytes, *, gz: bool = False) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if gz:
        body = gzip.compress(body)
        headers["content-encoding"] = "gzip"
    return http.post(path, content=body, headers=headers)


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_PASSTHROUGH_SUBCLASS)
    except orjson.JSONEncodeError:  # ints beyond 64 bits: send them as JSON text anyway
        import json

        return json.dumps(value).encode()


@_FUZZ
@given(event=_events, gz=st.booleans())
def test_generated_single_events_never_get_a_5xx(
    served: tuple[CollectorServer, EventStore, httpx.Client], event: Any, gz: bool
) -> None:
    r = _post(served[2], "/event", _dumps(event), gz=gz)
    assert r.status_code < 500, r.text


@_FUZZ
@given(events=st.lists(_events, max_size=6), gz=st.booleans())
def test_generated_batches_never_get_a_5xx(
    served: tuple[CollectorServer, EventStore, httpx.Client], events: list[Any], gz: bool
) -> None:
    r = _post(served[2], "/events", _dumps({"events": events}), gz=gz)
    assert r.status_code < 500, r.text
    if r.status_code == 400 and "rejected" in r.json():
        assert all(0 <= item["index"] < len(events) for item in r.json()["rejected"])


@_FUZZ
@given(doc=_otlp, gz=st.booleans())
def test_generated_otlp_requests_never_get_a_5xx(
    served: tuple[CollectorServer, EventStore, httpx.Client], doc: Any, gz: bool
) -> None:
    r = _post(served[2], "/v1/logs", _dumps(doc), gz=gz)
    assert r.status_code < 500, r.text


@_FUZZ
@given(body=st.binary(max_size=200), path=st.sampled_from(["/event", "/events", "/v1/logs"]), gz=st.booleans())
def test_generated_bytes_never_get_a_5xx(
    served: tuple[CollectorServer, EventStore, httpx.Client], body: bytes, path: str, gz: bool
) -> None:
    r = _post(served[2], path, body, gz=gz)
    assert r.status_code < 500, r.text
    r = served[2].post(path, content=body, headers={"content-type": "application/x-protobuf"})
    assert r.status_code < 500, r.text


def test_the_server_keeps_serving_after_the_generated_inputs(
    served: tuple[CollectorServer, EventStore, httpx.Client],
) -> None:
    """Runs after the generated tests (file order): health answers and a good event is stored."""
    _server, store, http = served
    assert http.get("/health").status_code == 200
    assert http.post("/event", json={"event": "after", "event_id": "fuzz-after-1"}).status_code == 200
    assert store.get("fuzz-after-1") is not None
