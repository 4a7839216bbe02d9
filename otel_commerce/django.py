"""Django: commerce events delivered only if the ``transaction.atomic()`` block around them commits.

::

    import otel_commerce.django  # or INSTALLED_APPS += ["otel_commerce.django.OtelCommerceConfig"]

    with transaction.atomic():
        order.save()
        record_event("order.completed", order=..., on_commit=True)   # or OTEL_COMMERCE_ON_COMMIT = True
    # delivered here, by transaction.on_commit(..., robust=True); a rollback discards it

- inside ``atomic()``: the events are released through ``transaction.on_commit(..., robust=True)`` (our
  failure never stops the app's hooks), registered once per savepoint level — keyed by the
  connection's savepoint ids — never once per transaction: Django drops a callback registered inside an
  inner ``atomic()`` that rolls back, and with it anything added to it later by the committed outer block;
- a savepoint rollback or a rollback discards the events of its level, counted
  ``commerce.events.discarded{reason=rollback}`` when Django drops our callback (Django gives no rollback
  signal; we count when the dropped callback is freed);
- outside a transaction (autocommit) and in async code (no ``atomic()`` there: ``on_commit`` raises
  ``SynchronousOnlyOperation``): delivered immediately.

Opt-in: ``on_commit=True`` (the ``default`` database) or ``on_commit="<alias>"`` per call, the
decorator's ``on_commit=``, ``OTEL_COMMERCE_ON_COMMIT=1`` in the environment or
``OTEL_COMMERCE_ON_COMMIT = True`` in the Django settings. Requires Django >= 4.2 (``robust=``).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import Any

from django.apps import AppConfig
from django.conf import settings as django_settings
from django.db import DEFAULT_DB_ALIAS, connections

from ._record._transaction import NOW, Held, Holder, _Now, discard, register_resolver, release

__all__ = ["OtelCommerceConfig"]

_BATCHES = "_otel_commerce_batches"  # per connection: savepoint ids -> weakref to the batch of that level


class _Batch:
    """The events of one savepoint level of one transaction: one ``on_commit`` callback."""

    __slots__ = ("__weakref__", "done", "items")

    def __init__(self) -> None:
        self.items: list[Held] = []
        self.done = False

    def hold(self, item: Held) -> None:
        self.items.append(item)

    def run(self) -> None:
        """The on_commit callback: the transaction committed."""
        self.done = True
        items, self.items = self.items, []
        release(items)

    def __del__(self) -> None:
        # Django dropped the callback without running it: a (savepoint) rollback, or an earlier
        # non-robust on_commit hook raised (README "Transactions")
        if not self.done and self.items:
            with contextlib.suppress(Exception):  # never raise from a finalizer
                discard(self.items, "rollback")


def _setting() -> bool:
    try:
        return bool(django_settings.configured and getattr(django_settings, "OTEL_COMMERCE_ON_COMMIT", False))
    except Exception:  # settings that cannot be read: not opted in
        return False


def _in_async_context() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _registered(connection: Any, batch: _Batch) -> bool:
    return any(getattr(func, "__self__", None) is batch for _, func, _ in connection.run_on_commit)


def _resolve(target: object) -> Holder | _Now | None:
    if target is None:
        if not _setting():
            return None
        target = True
    if target is True:
        alias, nothing = DEFAULT_DB_ALIAS, None  # None: let another integration's transaction take it
    elif isinstance(target, str) and target in connections.settings:
        alias, nothing = target, NOW
    else:
        return None  # not a Django alias
    if alias not in connections.settings or _in_async_context():
        return nothing
    connection = connections[alias]
    if not connection.in_atomic_block:
        return nothing
    key = tuple(connection.savepoint_ids)
    batches: dict[tuple[Any, ...], weakref.ref[_Batch]] = connection.__dict__.setdefault(_BATCHES, {})
    ref = batches.get(key)
    batch = ref() if ref is not None else None
    if batch is None or batch.done or not _registered(connection, batch):
        batch = _Batch()
        connection.on_commit(batch.run, robust=True)
        batches[key] = weakref.ref(batch)
    return batch


register_resolver(_resolve)


class OtelCommerceConfig(AppConfig):  # type: ignore[misc]  # AppConfig is untyped (Any)
    """``INSTALLED_APPS += ["otel_commerce.django.OtelCommerceConfig"]`` (importing this module is enough)."""

    name = "otel_commerce"
    label = "otel_commerce"
    verbose_name = "otel-commerce"
