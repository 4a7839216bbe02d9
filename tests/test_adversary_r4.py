"""Round 4 adversarial checks (issue 19's caller path): what other processors see, against the SDK's own path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadWriteLogRecord

from otel_commerce import EventValidationError, Settings
from otel_commerce._model._frozen import copy_json
from otel_commerce._otel import _sdk
from otel_commerce._record import build_pending
from otel_commerce._record._pii import apply_pii
from otel_commerce._record._recorder import CommerceLogRecord
from otel_commerce._runtime import RUNTIME


class _Seen(LogRecordProcessor):
    """Keeps the ``ReadWriteLogRecord`` objects it is handed."""

    def __init__(self) -> None:
        self.records: list[Any] = []

    def on_emit(self, log_record: Any) -> None:
        self.records.append(log_record)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _handed(fast: bool) -> Any:
    seen = _Seen()
    lp = LoggerProvider(shutdown_on_exit=False)
    lp.add_log_record_processor(seen)
    logger = lp.get_logger("t")
    record = CommerceLogRecord(event_name="commerce.x", body=None, attributes={"commerce.data": {"a": [1]}})
    if fast:
        _sdk.emit_record(logger, record)
    else:
        logger.emit(record)
    [rw] = seen.records
    return rw


def test_other_processors_are_handed_the_sdks_own_record_class() -> None:
    """A processor beside ours is handed a plain ``ReadWriteLogRecord``, as ``Logger.emit`` makes it (not a
    subclass of ours): ``type(r) is ReadWriteLogRecord`` holds, its repr and fields are the SDK's."""
    fast, sdk = _handed(True), _handed(False)
    assert type(fast) is type(sdk) is ReadWriteLogRecord
    assert repr(fast).split("(", 1)[0] == repr(sdk).split("(", 1)[0]
    assert sorted(vars(fast)) == sorted(vars(sdk))
    assert dict(fast.log_record.attributes) == dict(sdk.log_record.attributes) == {"commerce.data": {"a": (1,)}}


_TAMPER_APP = textwrap.dedent(
    """
    import json
    from opentelemetry import _logs
    from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
    import otel_commerce
    from otel_commerce.testing import capture_events

    class Redactor(LogRecordProcessor):  # a processor ahead of ours that edits what it is handed, in place
        def on_emit(self, rw):
            body, attrs = rw.log_record.body, rw.log_record.attributes
            body["data"]["note"] = "redacted"
            body["data"]["nested"]["k"] = "redacted"
            body["data"]["nested"]["l"].append("x")
            attrs["commerce.data"]["note"] = "redacted"
        def shutdown(self): pass
        def force_flush(self, timeout_millis=30000): return True

    lp = LoggerProvider(shutdown_on_exit=False)
    lp.add_log_record_processor(Redactor())
    _logs.set_logger_provider(lp)
    otel_commerce.configure(log_body="envelope")  # our processor, behind the redactor
    with capture_events() as events:
        otel_commerce.record_event("loyalty.points_earned", organization_id="o",
                                   data={"note": "kept", "nested": {"k": "v", "l": [1]}})
    print(json.dumps(events[0].data))
    """
)


def test_a_processor_editing_the_envelope_body_never_changes_the_delivered_event() -> None:
    """``OTEL_COMMERCE_LOG_BODY=envelope``: the body's ``data`` is the record's own copy (as the attributes are,
    through the SDK's cleaning), so a processor that edits the body in place (a redactor) changes its record,
    never the event our processor delivers (README "Attribute length limits": the original event)."""
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none", "OTEL_COMMERCE_NATS_URL": "", "OTEL_SDK_DISABLED": "false"}
    out = subprocess.run([sys.executable, "-c", _TAMPER_APP], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"note": "kept", "nested": {"k": "v", "l": [1]}}


class _OwnHashKey(str):
    """A str subclass with its own identity: a dict holds it beside the equal plain str key."""

    def __hash__(self) -> int:
        return 7

    def __eq__(self, other: object) -> bool:
        return self is other


@pytest.mark.parametrize("policy", ["hash", "drop"])
@pytest.mark.parametrize("key", ["email", "ip", "user_agent", "reason", "user_id"])
def test_a_key_met_twice_in_one_dict_gets_the_policy_once(policy: str, key: str) -> None:
    """Two keys of one dict that become the same plain key (the second one wins, as ``freeze_data`` then
    ``apply_pii`` gave): the policy applies once to the value kept, never a digest of a digest."""
    data_sets: list[dict[Any, Any]] = [
        {_OwnHashKey(key): ["1.2.3.4", "a@b.co"], key: "10.0.0.1"},
        {key: "10.0.0.1", _OwnHashKey(key): ["1.2.3.4"]},
        {_OwnHashKey(key): {"x": 1}, key: "a@b.co"},
    ]
    RUNTIME.install(Settings(pii=policy), None)
    try:
        for data in data_sets:
            got = build_pending("loyalty.points_earned", organization_id="o", data=data).event.data
            plain = {str.__str__(k): copy_json(v) for k, v in data.items()}  # the last value of each plain key
            assert got == apply_pii(plain, policy), data
    finally:
        RUNTIME.reset()


@pytest.mark.parametrize("fsync", ["none", "always"])
def test_an_event_submitted_after_shutdown_is_dropped_never_left_in_a_new_wal_segment(
    tmp_path: Path, fsync: str
) -> None:
    """``wal``: an event submitted to a shut-down engine (outside the exit work) is reported dropped; it must not
    also be appended to a segment made after the spool closed — the next start would replay and deliver an
    event its ``on_error`` called dropped (an app that re-records on error: twice). Also in the previous release."""
    from otel_commerce._delivery import DeliveryEngine
    from otel_commerce._delivery._spool import Spool, SpoolKey, read_file
    from otel_commerce._model import Pending
    from otel_commerce._model._catalog import event_from_args
    from otel_commerce._model._pending import decode_pending, encode_pending
    from otel_commerce._sinks import JetStreamSink

    def order(i: int) -> Pending:
        args = {"order_id": f"o_{i}", "org_name": "o", "user_id": "u", "email": "", "total_cents": 1}
        event, items = event_from_args("order.completed", args)
        return Pending(event=event, items=items)

    def on_disk() -> list[str]:
        return sorted(
            r[0][6] for p in tmp_path.iterdir() if p.suffix in (".wal", ".spill") for r in read_file(p).records
        )

    errors: list[str] = []
    spool = Spool(
        tmp_path, SpoolKey("svc", ("jetstream:x",)), mode="wal", fsync=fsync, encode=encode_pending, decode=decode_pending
    )
    engine = DeliveryEngine(
        [JetStreamSink("nats://127.0.0.1:1")], spool=spool, exit_hook=False, on_error=lambda e, p: errors.append(str(e))
    )
    assert engine.submit(order(0))
    engine.shutdown(1)
    assert on_disk() == ["o_0"]  # spooled at shutdown: the next start delivers it
    assert not engine.submit(order(1))
    assert errors[-1] == "engine is shut down: event dropped"
    assert on_disk() == ["o_0"]
    with pytest.raises(OSError):
        spool.append_wal(b"x")


class _OddKeys(Mapping[Any, Any]):
    """A custom Mapping whose keys need not be hashable (its own storage: a list of pairs)."""

    def __init__(self, items: list[tuple[Any, Any]]) -> None:
        self._items = items

    def __getitem__(self, key: Any) -> Any:
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[Any]:
        return iter([k for k, _ in self._items])

    def __len__(self) -> int:
        return len(self._items)


@pytest.mark.parametrize("policy", ["keep", "hash", "drop"])
@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([(["a"], 1)], "data has a non-string key ['a'] (list)"),
        ([("ok", 1), ({"a": 1}, 2)], "data has a non-string key {'a': 1} (dict)"),
        ([(["a"], 1), ("id", 2)], "loyalty.points_earned: data key 'id' is reserved"),
    ],
)
def test_an_unhashable_key_of_a_custom_mapping_is_an_event_validation_error(
    policy: str, items: list[tuple[Any, Any]], message: str
) -> None:
    """Bad input raises ``EventValidationError`` at the call (README "Guarantees"), also for a custom Mapping
    whose key cannot be hashed: the reserved-key check raised ``TypeError`` before the walk named the key.
    Also in the previous release."""
    RUNTIME.install(Settings(pii=policy), None)
    try:
        with pytest.raises(EventValidationError) as info:
            build_pending("loyalty.points_earned", organization_id="o", data=_OddKeys(items))
        assert str(info.value).startswith(message)
    finally:
        RUNTIME.reset()
