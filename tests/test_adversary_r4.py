"""Round 4 adversarial checks (issue 19's caller path): what other processors see, against the SDK's own path."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadWriteLogRecord

from otel_commerce._otel import _sdk
from otel_commerce._record._recorder import CommerceLogRecord


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
