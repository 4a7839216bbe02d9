"""``@commerce_event("order.completed")``: record an event from a handler's result, in its span context.

The decorator never changes the handler's result or exception. A telemetry failure (bad result, bad
input) is logged, counted and passed to the ``on_error`` callbacks — never raised.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timezone
from typing import Any, ParamSpec, TypeVar, cast

from opentelemetry import trace

from ._catalog import CATALOG, _entity_id
from ._delivery._pending import Pending
from ._errors import EventValidationError
from ._identity import event_id_for, uuid7
from ._model import CommerceEvent, Order
from ._pii import apply_pii
from ._record import build_pending, emit_pending
from ._runtime import RUNTIME
from ._scope import SCHEMA_URL, SCOPE_NAME, SCOPE_VERSION
from .subjects import subject_for

__all__ = ["commerce_event"]

logger = logging.getLogger("otel_commerce")

P = ParamSpec("P")
R = TypeVar("R")
Extract = Callable[..., "Mapping[str, Any] | CommerceEvent | Order | None"]
OrgId = str | Callable[..., str] | None

_LIFTED = ("id", "organization_id", "user_id", "session_id")


def now() -> datetime:
    return datetime.now(timezone.utc)


def _pending_from_event(event: CommerceEvent) -> Pending:
    """A returned envelope is used as is; missing event_id and trace ids are filled in."""
    if not event.event_id:
        spec = CATALOG.get(event.type)
        event.event_id = event_id_for(event.type, event.organization_id, event.id, once=spec.once if spec else False)
    event.data = apply_pii(event.data, RUNTIME.settings.pii)
    sc = trace.get_current_span().get_span_context()
    if sc.is_valid and not event.trace_id:
        event.trace_id = format(sc.trace_id, "032x")
        event.span_id = format(sc.span_id, "016x")
        return Pending(event=event, trace_flags=int(sc.trace_flags), trace_state=sc.trace_state.to_header())
    return Pending(event=event)


def _org(default: OrgId, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    if callable(default):
        return default(*args, **kwargs)
    return default


def _to_pending(event_type: str, value: Any, org: str | None) -> Pending | None:
    if value is None:
        return None
    if isinstance(value, CommerceEvent):
        return _pending_from_event(value)
    if isinstance(value, Order):
        return build_pending(event_type, order=value, organization_id=org)
    if isinstance(value, Mapping):
        keep = CATALOG[event_type].data if event_type in CATALOG else ()
        # lifted keys leave data, unless the catalog's data has them (checkout.started keeps session_id)
        data = {k: v for k, v in value.items() if k not in _LIFTED or k in keep}
        return build_pending(
            event_type,
            id=value.get("id"),
            organization_id=value.get("organization_id") or org,
            user_id=value.get("user_id"),
            session_id=value.get("session_id"),
            data=data,
        )
    raise EventValidationError(
        f"@commerce_event({event_type!r}): cannot make an event from a {type(value).__name__}; "
        "return a mapping, an Order or a CommerceEvent, or pass extract="
    )


def _error_event_id(event_type: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The id of an on_error event: the catalog rule over the handler's string arguments, else a UUIDv7."""
    spec = CATALOG.get(event_type)
    if spec is not None:
        try:
            bound = inspect.signature(fn).bind_partial(*args, **kwargs).arguments
            return _entity_id(spec, {k: v for k, v in bound.items() if isinstance(v, str) and v}, now())
        except (TypeError, ValueError):
            pass
    return uuid7()


class _Recorder:
    """What a decorated callable does after (or instead of) its handler returns."""

    def __init__(
        self, event_type: str, extract: Extract | None, on_error: str | None, org: OrgId, span_name: str | None
    ) -> None:
        self.event_type = event_type
        self.extract = extract
        self.on_error = on_error
        self.org = org
        self.span_name = span_name

    def span(self) -> AbstractContextManager[Any]:
        if self.span_name is None or trace.get_current_span().is_recording():
            return nullcontext()
        return trace.get_tracer(SCOPE_NAME, SCOPE_VERSION, schema_url=SCHEMA_URL).start_as_current_span(self.span_name)

    def record(self, result: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            value = self.extract(result, *args, **kwargs) if self.extract is not None else result
            pending = _to_pending(self.event_type, value, _org(self.org, args, kwargs))
            if pending is not None:
                emit_pending(pending)
        except Exception as exc:
            self._fail(exc)

    def record_error(
        self, fn: Callable[..., Any], error: BaseException, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        if self.on_error is None:
            return
        try:
            data = {"error_type": type(error).__name__, "error_message": str(error)[:256]}
            emit_pending(
                build_pending(
                    self.on_error,
                    id=_error_event_id(self.on_error, fn, args, kwargs),
                    organization_id=_org(self.org, args, kwargs),
                    data=data,
                )
            )
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        logger.warning("otel-commerce: could not record %s: %s", self.event_type, exc)
        RUNTIME.report_error(exc, None)


def commerce_event(
    event_type: str,
    *,
    extract: Extract | None = None,
    on_error: str | None = None,
    organization_id: OrgId = None,
    span: str | bool | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Record ``event_type`` after the decorated (sync or async) function returns.

    What becomes the event: a returned ``CommerceEvent`` as is; a returned ``Order`` like the order
    helpers; a returned mapping becomes ``data`` with ``id``, ``organization_id``, ``user_id`` and
    ``session_id`` lifted to the envelope; ``extract(result, *args, **kwargs)`` overrides that (None =
    no event). ``on_error="checkout.failed"`` records that event when the handler raises (the
    exception still propagates). ``organization_id`` is a default (or a callable of the arguments).
    ``span=True`` (or a span name) opens a span around the handler when none is recording.
    """
    subject_for(event_type)
    if on_error is not None:
        subject_for(on_error)
    span_name = (f"commerce {event_type}" if span is True else span) or None
    recorder = _Recorder(
        event_type, extract, on_error, organization_id, span_name if isinstance(span_name, str) else None
    )

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(fn):
            afn = cast(Callable[P, Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                if not RUNTIME.active():
                    return await afn(*args, **kwargs)
                with recorder.span():
                    try:
                        result = await afn(*args, **kwargs)
                    except BaseException as error:
                        recorder.record_error(fn, error, args, kwargs)
                        raise
                    recorder.record(result, args, kwargs)
                    return result

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if not RUNTIME.active():
                return fn(*args, **kwargs)
            with recorder.span():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as error:
                    recorder.record_error(fn, error, args, kwargs)
                    raise
                recorder.record(result, args, kwargs)
                return result

        return wrapper

    return decorate
