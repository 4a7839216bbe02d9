"""Recording events: ``record_event``, the ``@commerce_event`` decorator and the PII policy.
"""

from ._decorator import commerce_event
from ._pii import apply_pii, pii_kind
from ._recorder import (
    CommerceLogRecord,
    build_pending,
    emit_pending,
    envelope_body,
    event_attributes,
    flat_attributes,
    record_event,
    warn_without_tracer_provider,
)
from ._transaction import Transaction, transaction

__all__ = ['CommerceLogRecord', 'apply_pii', 'build_pending', 'commerce_event', 'emit_pending', 'envelope_body', 'event_attributes', 'flat_attributes', 'pii_kind', 'record_event', 'Transaction', 'transaction', 'warn_without_tracer_provider']
