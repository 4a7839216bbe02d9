"""The one error tree of otel-commerce.

::

    CommerceError
     ├── ConfigurationError (ValueError)     bad settings, unknown mode, unusable URL
     ├── EventValidationError (ValueError)   bad input at the API boundary, before anything is sent
     │    └── PayloadTooLargeError           the encoded envelope exceeds the server's max payload
     ├── StreamError                         bootstrap could not create or reconcile the stream
     └── DeliveryError                       a sink could not deliver
          ├── TransientDeliveryError         timeout, unavailable, 408/429/5xx: retried
          └── PermanentDeliveryError         rejected (other 4xx, bad subject...): not retried

Third-party errors (nats-py, httpx) are translated in exactly one place per sink and chained.
"""

from __future__ import annotations

__all__ = [
    "CommerceError",
    "ConfigurationError",
    "DeliveryError",
    "EventValidationError",
    "PayloadTooLargeError",
    "PermanentDeliveryError",
    "StreamError",
    "TransientDeliveryError",
    "install_hint",
]


class CommerceError(Exception):
    """Base class of every error raised by otel-commerce."""


class ConfigurationError(CommerceError, ValueError):
    """A setting (argument or environment variable) is invalid."""


class EventValidationError(CommerceError, ValueError):
    """An event or one of its fields is invalid; raised before anything is sent."""


class PayloadTooLargeError(EventValidationError):
    """The encoded envelope is larger than the server accepts."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"encoded event is {size} bytes, over the server's max payload of {limit} bytes")
        self.size = size
        self.limit = limit


class StreamError(CommerceError):
    """The COMMERCE stream could not be created, checked or reconciled."""


class DeliveryError(CommerceError):
    """A sink could not deliver an event."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class TransientDeliveryError(DeliveryError):
    """A failure worth retrying (network, timeout, 408, 429, 5xx)."""


class PermanentDeliveryError(DeliveryError):
    """A failure that retrying cannot fix (rejected by the server)."""


def install_hint(extra: str) -> str:
    """The pip command that installs ``extra`` of *this* installation (otel-commerce is not on PyPI).

    From a checkout (``pip install -e .`` or ``pip install .``, recorded by pip in ``direct_url.json``,
    PEP 610): ``pip install -e '<checkout>[extra]'``; otherwise the command to run in a checkout.
    """
    import json
    from importlib.metadata import PackageNotFoundError, distribution
    from urllib.parse import unquote, urlsplit

    try:
        info = json.loads(distribution("otel-commerce").read_text("direct_url.json") or "{}")
    except (PackageNotFoundError, ValueError):
        info = {}
    url = info.get("url", "") if isinstance(info, dict) else ""
    if isinstance(url, str) and url.startswith("file://") and "dir_info" in info:
        path = unquote(urlsplit(url).path)
        flag = "-e " if info["dir_info"].get("editable") else ""
        return f"pip install {flag}'{path}[{extra}]'"
    return f"pip install -e '.[{extra}]' (in an otel-commerce checkout)"
