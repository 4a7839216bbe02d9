"""The ``Sink`` protocol: what the delivery engine needs from a destination (JetStream, collector).

Everything async runs on the engine's own loop, one ``send`` at a time per sink — or up to the sink's
``max_concurrent_sends`` (an optional int attribute; JetStream: 4) while full batches are waiting, their
outcomes settled in the order the batches left. ``send`` returns one
outcome per item: ``None`` (delivered, duplicates included), a :class:`TransientDeliveryError`
(retried by the engine, honouring its ``retry_after``) or any other :class:`DeliveryError`
(rejected for good). A sink never retries by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from .._errors import DeliveryError

__all__ = ["ErrorCallback", "Item", "Outcome", "Prepared", "Sink", "abandon"]

#: What the engine carries from ``submit`` to each sink's ``prepare`` (the pipeline's ``Pending``); the
#: engine never looks inside it.
Item = Any

#: ``on_error(error, item)``: called for every item dropped or rejected for good (``item`` is None for
#: failures not tied to one item).
ErrorCallback = Callable[[BaseException, Any], None]

#: What ``Sink.send`` reports for one item.
Outcome = DeliveryError | None

#: ``(data, size_in_bytes)``: a pending event encoded for one sink.
Prepared = tuple[Any, int]

#: State abandoned in a forked child: kept referenced forever so that the garbage collector never
#: closes (and so never unregisters from the parent's shared epoll / closes the parent's sockets) it.
_ABANDONED: list[Any] = []


def abandon(state: Any) -> None:
    """Keep ``state`` (a loop, connections, a queue inherited through ``fork``) alive and untouched."""
    if state is not None:
        _ABANDONED.append(state)


@runtime_checkable
class Sink(Protocol):
    """A destination of the delivery engine; ``name`` is ``"jetstream"`` or ``"collector"``."""

    name: str

    def prepare(self, pending: Item) -> Prepared | None:
        """Map and encode ``pending`` for this sink (on the delivery thread); None if it is not for this sink.

        Raises ``EventValidationError`` when it cannot be encoded (the event is rejected).
        """
        ...

    async def start(self) -> None:
        """Begin (re)connecting in the background; must return promptly."""
        ...

    def ready(self) -> bool:
        """True when ``send`` can be attempted (e.g. connected)."""
        ...

    async def wait_ready(self, timeout_seconds: float) -> bool:
        """Wait up to ``timeout_seconds`` for ``ready()``."""
        ...

    async def send(self, items: Sequence[Any]) -> list[Outcome]:
        """Deliver prepared items; one outcome per item, in order."""
        ...

    async def close(self) -> None:
        """Close connections (on the engine's loop, at shutdown)."""
        ...

    def forget(self) -> None:
        """After ``fork`` in the child: drop (with :func:`abandon`, never close) every connection."""
        ...
