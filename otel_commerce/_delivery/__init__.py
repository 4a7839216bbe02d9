"""The generic delivery engine: queue, lanes, batching, retry, flush/exit/fork, and its ``Sink`` protocol.

It knows no catalog: the mapping/encoding of an event is the sinks' job (``Sink.prepare``).
"""

from ._engine import DeliveryEngine, exit_engines, shutdown_all
from ._process import FORK_HOLD_SECONDS, add_start_hook, enter_hold, leave_hold, set_exit_note, set_late_submit
from ._retry import RETRYABLE_STATUS, backoff_seconds, is_retryable_status, parse_retry_after
from ._sink import ErrorCallback, Item, Outcome, Prepared, Sink, abandon

__all__ = [
    "FORK_HOLD_SECONDS",
    "RETRYABLE_STATUS",
    "DeliveryEngine",
    "ErrorCallback",
    "Item",
    "Outcome",
    "Prepared",
    "Sink",
    "abandon",
    "add_start_hook",
    "backoff_seconds",
    "enter_hold",
    "exit_engines",
    "is_retryable_status",
    "leave_hold",
    "parse_retry_after",
    "set_exit_note",
    "set_late_submit",
    "shutdown_all",
]
