"""Delivery: the background engine and its sinks (JetStream, analytics collector)."""

from ._collector import CollectorSink
from ._engine import DeliveryEngine
from ._jetstream import JetStreamSink
from ._pending import OnError, Pending
from ._sink import Outcome, Prepared, Sink

__all__ = ["CollectorSink", "DeliveryEngine", "JetStreamSink", "OnError", "Outcome", "Pending", "Prepared", "Sink"]
