"""The destinations of the delivery engine: NATS JetStream (with stream bootstrap and nats error
translation) and the analytics collector (HTTP).
"""

from ._bootstrap import DEFAULT_DUPLICATE_WINDOW_SECONDS, BootstrapResult, bootstrap
from ._collector import CollectorSink
from ._jetstream import JetStreamSink, header_block_size, prepare_message
from ._natsutil import DEFAULT_MAX_PAYLOAD, headers_for_ids, max_payload, translate_nats_error

__all__ = ['BootstrapResult', 'CollectorSink', 'DEFAULT_DUPLICATE_WINDOW_SECONDS', 'DEFAULT_MAX_PAYLOAD', 'JetStreamSink', 'header_block_size', 'headers_for_ids', 'bootstrap', 'max_payload', 'prepare_message', 'translate_nats_error']
