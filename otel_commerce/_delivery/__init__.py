"""The generic delivery engine: queue, lanes, batching, retry, flush/exit/fork, and its ``Sink`` protocol.

It knows no catalog: the mapping/encoding of an event is the sinks' job (``Sink.prepare``).
"""

from ._engine import DeliveryEngine
from ._retry import RETRYABLE_STATUS, backoff_seconds, is_retryable_status, parse_retry_after
from ._sink import ErrorCallback, Item, Outcome, Prepared, Sink, abandon

__all__ = ['ErrorCallback', 'Item', 'DeliveryEngine', 'Outcome', 'Prepared', 'RETRYABLE_STATUS', 'Sink', 'abandon', 'backoff_seconds', 'is_retryable_status', 'parse_retry_after']
