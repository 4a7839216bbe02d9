"""Testing aids for applications: capture the commerce events your code records, without any server.

::

    from otel_commerce.testing import capture_events

    def test_checkout_records_order_completed():
        with capture_events() as events:
            complete_order(...)
        assert events.types == ["order.completed"]
        assert events[0].data["revenue"] == 25.5
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ._model import CommerceEvent
from ._runtime import RUNTIME

__all__ = ["CapturedEvents", "capture_events"]


class CapturedEvents(list[CommerceEvent]):
    """The captured envelopes (GA4/CAPI blocks filled in, as they would be delivered)."""

    @property
    def types(self) -> list[str]:
        return [e.type for e in self]

    def of_type(self, event_type: str) -> list[CommerceEvent]:
        return [e for e in self if e.type == event_type]


@contextmanager
def capture_events() -> Iterator[CapturedEvents]:
    """Collect every event recorded inside the block (also with no sink and no OTel SDK installed)."""
    events = CapturedEvents()
    RUNTIME.captures.append(events)
    try:
        yield events
    finally:
        RUNTIME.captures.remove(events)
