"""The OpenTelemetry side: log record processor, log/span exporters, trace propagation, consumer helpers.
"""

from ._adapters import CommerceLogExporter, CommerceLogRecordProcessor, CommerceSpanExporter, pending_from_body
from ._consumer import consume_span, extract_context
from ._propagation import current_ids, inject_headers

__all__ = ['CommerceLogExporter', 'CommerceLogRecordProcessor', 'CommerceSpanExporter', 'consume_span', 'current_ids', 'extract_context', 'inject_headers', 'pending_from_body']
