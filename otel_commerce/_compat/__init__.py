"""The seed-compatible ``Publisher`` (direct JetStream) and ``Client`` (collector).
"""

from ._client import Client
from ._publisher import Publisher, message_headers

__all__ = ['Client', 'Publisher', 'message_headers']
