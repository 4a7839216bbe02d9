"""The destinations of the delivery engine: NATS JetStream (with stream bootstrap and nats error
translation) and the analytics collector (HTTP).
"""

from ._bootstrap import DEFAULT_DUPLICATE_WINDOW_SECONDS, BootstrapResult, bootstrap
from ._collector import CollectorSink
from ._jetstream import JetStreamSink
from ._natsutil import DEFAULT_MAX_PAYLOAD, headers_for_ids, max_payload, translate_nats_error

__all__ = ['BootstrapResult', 'CollectorSink', 'DEFAULT_DUPLICATE_WINDOW_SECONDS', 'DEFAULT_MAX_PAYLOAD', 'JetStreamSink', 'headers_for_ids', 'bootstrap', 'max_payload', 'translate_nats_error']
