"""``@commerce_event("order.completed")``: record an event from a handler's result, in its span context.

The decorator never changes the handler's result or exception. A telemetry failure (bad result, bad
input) is logged, counted and passed to the ``on_error`` callbacks — never raised.
"""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import functools
import inspect
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime, timezone
from typing import Any, ParamSpec, TypeVar, cast

from opentelemetry import trace

from .._delivery import _metrics
from .._errors import EventValidationError
from .._model import CATALOG, CommerceEvent, Order, Pending, entity_id, event_id_for, subject_for, uuid7
from .._model._catalog import check_envelope
from .._model._frozen import copy_mapping
from .._model._time import utc
from .._otel import _slot
from .._otel._exceptions import record_exception
from .._scope import SCHEMA_URL, SCOPE_NAME, SCOPE_VERSION
from ._pii import apply_pii, scrub_text
from ._recorder import build_pending, emit_pending
from ._transaction import hold, holder_for

__all__ = ["commerce_event"]

logger = logging.getLogger("otel_commerce")

P = ParamSpec("P")
R = TypeVar("R")
Extract = Callable[..., "Mapping[str, Any] | CommerceEvent | Order | None"]
Arg = str | Callable[..., str] | None  # a value, or a callable of the handler's arguments

_LIFTED = ("id", "organization_id", "user_id", "session_id")


def now() -> datetime:
    return datetime.now(timezone.utc)


def _pending_from_event(event: CommerceEvent, key: str | None) -> Pending:
    """A returned envelope, copied (the handler's object is never changed): missing event_id and trace ids
    are filled in on the copy, ``data`` gets the PII policy, a naive timestamp is taken as UTC."""
    spec = CATALOG.get(event.type)
    frozen = CommerceEvent(
        id=event.id,
        type=event.type,
        timestamp=utc(event.timestamp),
        organization_id=event.organization_id,
        user_id=event.user_id,
        session_id=event.session_id,
        data=apply_pii(copy_mapping(event.data or {}), _slot.RUNTIME.settings.pii),
        ga4=copy.deepcopy(event.ga4),
        facebook_capi=copy.deepcopy(event.facebook_capi),
        event_id=event.event_id
        or event_id_for(
            event.type, event.organization_id, event.id, once=spec.once if spec else False, idempotency_key=key
        ),
        trace_id=event.trace_id,
        span_id=event.span_id,
    )
    check_envelope(frozen, max_bytes=_slot.RUNTIME.settings.max_event_bytes)
    sc = trace.get_current_span().get_span_context()
    if sc.is_valid and not frozen.trace_id:
        frozen.trace_id = format(sc.trace_id, "032x")
        frozen.span_id = format(sc.span_id, "016x")
        return Pending(event=frozen, trace_flags=int(sc.trace_flags), trace_state=sc.trace_state.to_header())
    return Pending(event=frozen)


def _arg(default: Arg, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    if callable(default):
        return default(*args, **kwargs)
    return default


def _as_mapping(value: Any) -> Mapping[str, Any] | None:
    """A mapping view of a result or argument: a mapping, a pydantic v2 model (``model_dump()``), or a
    dataclass instance (its fields, shallow). None for anything else."""
    if type(value) is dict or isinstance(value, Mapping):
        return value
    dump = getattr(type(value), "model_dump", None)
    if dump is not None and callable(dump):
        dumped = value.model_dump(mode="json")  # JSON-shaped: datetimes and Decimals as strings
        return dumped if isinstance(dumped, Mapping) else None
    try:
        names = _field_names(type(value))  # type: ignore[arg-type]  # typeshed: type is not Hashable
    except TypeError:  # a class that cannot be a cache key
        names = _field_names.__wrapped__(type(value))
    return None if names is None else {name: getattr(value, name) for name in names}


@functools.lru_cache(maxsize=256)
def _field_names(cls: Any) -> tuple[str, ...] | None:
    """The field names of a dataclass (None for any other class, and for a class of classes): fixed when
    the class is made, so read once per class rather than on every result."""
    if issubclass(cls, type) or not dataclasses.is_dataclass(cls):
        return None
    return tuple(f.name for f in dataclasses.fields(cls))


def _to_pending(event_type: str, value: Any, org: Any, key: str | None, drop: tuple[str, ...]) -> Pending:
    """The event a (non-None, non-dict) result becomes; ``drop``: the lifted keys that leave ``data``."""
    if isinstance(value, CommerceEvent):
        return _pending_from_event(value, key)
    if isinstance(value, Order):
        return build_pending(event_type, order=value, organization_id=org, idempotency_key=key)
    mapping = _as_mapping(value)
    if mapping is not None:
        data = {k: v for k, v in mapping.items() if k not in drop}
        return build_pending(
            event_type,
            id=mapping.get("id"),
            organization_id=mapping.get("organization_id") or org,
            user_id=mapping.get("user_id"),
            session_id=mapping.get("session_id"),
            data=data,
            idempotency_key=key,
        )
    raise EventValidationError(
        f"@commerce_event({event_type!r}): cannot make an event from a {type(value).__name__}; "
        "return a mapping, a pydantic model, a dataclass, an Order or a CommerceEvent, or pass extract="
    )


def _would_be(
    event_type: str, value: Any, org: Arg, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Pending | None:
    """The envelope a refused result would have become (unvalidated, no event_id), for ``on_error``."""
    try:
        if isinstance(value, CommerceEvent):
            return Pending(event=value)
        organization = value.org_id if isinstance(value, Order) else None
        if isinstance(value, Mapping):
            organization = value.get("organization_id")
        if not organization:
            organization = org(*args, **kwargs) if callable(org) else org
        data: dict[str, Any] = {}
        entity_id: Any = ""
        user: Any = ""
        if isinstance(value, Order):
            data = {"order_id": value.id, "revenue": value.total, "currency": value.currency, "email": value.email}
            entity_id, user = value.id, value.user_id
        elif isinstance(value, Mapping):
            data = {k: v for k, v in value.items() if k not in _LIFTED}
            entity_id, user = value.get("id") or "", value.get("user_id") or ""
        event = CommerceEvent(
            id=entity_id if isinstance(entity_id, str) else repr(entity_id),
            type=event_type,
            timestamp=now(),
            organization_id=organization if isinstance(organization, str) else "",
            user_id=user if isinstance(user, str) else "",
            data=data,
        )
        return Pending(event=event, items=list(value.items) if isinstance(value, Order) else [])
    except Exception:  # best effort: the refusal itself is what matters
        return None


def _error_scope(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, str]:
    """The handler's string arguments, and the string fields of mapping / pydantic / dataclass arguments
    (a FastAPI body model carrying ``session_id``); a top-level argument wins over a field."""
    try:
        bound = inspect.signature(fn).bind_partial(*args, **kwargs).arguments
    except (TypeError, ValueError):
        return {}
    scope: dict[str, str] = {}
    for value in bound.values():
        if isinstance(value, str):
            continue
        try:
            mapping = _as_mapping(value)
        except Exception:  # a model that cannot dump itself: just not a source of ids
            continue
        if mapping is not None:
            for k, v in mapping.items():
                if isinstance(k, str) and isinstance(v, str) and v:
                    scope.setdefault(k, v)
    scope.update({k: v for k, v in bound.items() if isinstance(v, str) and v})
    return scope


def _error_event_id(event_type: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The id of an on_error event: the catalog rule over the handler's arguments (see ``_error_scope``),
    else a UUIDv7."""
    spec = CATALOG.get(event_type)
    if spec is not None:
        try:
            return entity_id(spec, _error_scope(fn, args, kwargs), now())
        except (EventValidationError, TypeError, ValueError):
            pass
    return uuid7()


def _is_failure(error: BaseException) -> bool:
    """True for an exception that means the operation failed; False for cancellation and shutdown.

    ``asyncio.CancelledError``, ``KeyboardInterrupt``, ``SystemExit`` and ``GeneratorExit`` are
    ``BaseException``s, not ``Exception``s; ``concurrent.futures.CancelledError`` (a future cancelled) and
    Starlette's ``ClientDisconnect`` (the client went away mid-request) are ``Exception``s that mean the
    same: a cancelled request is not a failed checkout.
    """
    if not isinstance(error, Exception) or isinstance(error, concurrent.futures.CancelledError):
        return False
    starlette = sys.modules.get("starlette.requests")
    disconnect = getattr(starlette, "ClientDisconnect", None) if starlette is not None else None
    return not (isinstance(disconnect, type) and isinstance(error, disconnect))


_NO_SPAN: AbstractContextManager[Any] = nullcontext()  # reusable: it holds no state


@contextmanager
def _our_span(name: str) -> Iterator[trace.Span]:
    """The span ``span=True`` opens. A handler's exception is recorded on it (``exception`` event, ERROR
    status) with its text scrubbed of e-mail / IP / phone (``scrub_text``) unless ``OTEL_COMMERCE_PII=keep``:
    every span exporter sees this span, and an exception message often quotes the customer."""
    tracer = trace.get_tracer(SCOPE_NAME, SCOPE_VERSION, schema_url=SCHEMA_URL)
    with tracer.start_as_current_span(name, record_exception=False, set_status_on_exception=False) as span:
        try:
            yield span
        except BaseException as exc:
            record_exception(span, exc)
            raise


class _Recorder:
    """What a decorated callable does after (or instead of) its handler returns.

    Everything that depends only on the decorator's arguments is settled here, once: which of them are
    callables of the handler's arguments, the catalog's ``data`` keys, and which lifted keys leave ``data``.
    """

    __slots__ = (
        "commit_call",
        "drop",
        "event_type",
        "extract",
        "inline",
        "key",
        "key_call",
        "on_commit",
        "on_error",
        "org",
        "org_call",
        "pop_lifted",
        "pop_session",
        "span_name",
        "type",
        "type_ok",
    )

    def __init__(
        self,
        event_type: str,
        extract: Extract | None,
        on_error: str | None,
        org: Arg,
        span_name: str | None,
        key: Arg = None,
        on_commit: object = None,
    ) -> None:
        self.event_type = event_type
        # what build_pending makes of the type (validated by commerce_event); type_ok once it passed
        # build_pending's checks: a type allowed once stays allowed (registrations are never undone)
        self.type = event_type[len("commerce.") :] if event_type.startswith("commerce.") else event_type
        self.type_ok = False
        self.extract = extract
        self.on_error = on_error
        self.org = org
        self.span_name = span_name
        self.key = key
        self.on_commit = on_commit
        self.org_call = callable(org)
        self.key_call = callable(key)
        self.commit_call = callable(on_commit)
        keep = CATALOG[event_type].data if event_type in CATALOG else ()
        # lifted keys leave data, unless the catalog's data has them (checkout.started keeps session_id)
        self.drop = tuple(k for k in _LIFTED if k not in keep)
        # the inline dict path: id / organization_id / user_id always leave data (no catalog type keeps them)
        self.pop_lifted = self.drop[:3] == _LIFTED[:3]
        self.pop_session = "session_id" in self.drop
        # the wrappers make the event of a returned dict inline (no call: this runs on every request) when
        # no argument of the decorator needs the handler's arguments
        self.inline = extract is None and self.pop_lifted and not (self.org_call or self.key_call or self.commit_call)

    def span(self) -> AbstractContextManager[Any]:
        if self.span_name is None or trace.get_current_span().is_recording():
            return _NO_SPAN
        return _our_span(self.span_name)

    def record(self, result: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """The event of ``result`` (the wrappers inline the common case, a dict with :attr:`inline`)."""
        value: Any = None
        try:
            value = self.extract(result, *args, **kwargs) if self.extract is not None else result
            key: Any = self.key  # a callable, a non-empty string (checked at decoration) or None
            if self.key_call:
                key = key(*args, **kwargs)
                if key is not None and (not isinstance(key, str) or not key):
                    raise EventValidationError(f"idempotency_key must be a non-empty string, got {key!r}")
            on_commit: Any = self.on_commit
            if self.commit_call:
                on_commit = on_commit(*args, **kwargs)
            org: Any = self.org
            if self.org_call:
                org = org(*args, **kwargs)
            if value is None:
                return
            if type(value) is dict and self.pop_lifted:  # as the wrappers' inline path
                data = value.copy()
                pop = data.pop
                pending = build_pending(
                    self.type if self.type_ok else self.event_type,  # unchecked: build_pending strips the prefix
                    id=pop("id", None),
                    organization_id=pop("organization_id", None) or org,
                    user_id=pop("user_id", None),
                    session_id=pop("session_id", None) if self.pop_session else value.get("session_id"),
                    data=data,
                    idempotency_key=key,
                    type_checked=self.type_ok,
                )
                self.type_ok = True
            else:
                pending = _to_pending(self.event_type, value, org, key, self.drop)
            hold(pending, holder_for(on_commit))  # held until the commit, when asked (README "Transactions")
        except Exception as exc:
            self.refused(exc, value, args, kwargs)

    def refused(self, exc: Exception, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """The result's event could not be made or recorded: logged, counted, reported (never raised)."""
        if isinstance(exc, EventValidationError):
            self._fail(exc, _would_be(self.event_type, value, self.org, args, kwargs))
        else:
            self._fail(exc)

    def record_error(
        self, fn: Callable[..., Any], error: BaseException, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        if self.on_error is None or not _is_failure(error):
            return
        try:
            message = str(error)
            if _slot.RUNTIME.settings.pii != "keep":  # before truncating: half an address would not match
                message = scrub_text(message)
            data = {"error_type": type(error).__name__, "error_message": message[:256]}
            emit_pending(  # never held: the event describing a failure must not roll back with it
                build_pending(
                    self.on_error,
                    id=_error_event_id(self.on_error, fn, args, kwargs),
                    organization_id=_arg(self.org, args, kwargs),
                    data=data,
                )
            )
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc: Exception, would_be: Pending | None = None) -> None:
        logger.warning("otel-commerce: could not record %s: %s", self.event_type, exc)
        if isinstance(exc, EventValidationError):
            _metrics.count("rejected", reason="invalid", via="decorator")
        _slot.RUNTIME.report_error(exc, would_be)


def commerce_event(
    event_type: str,
    *,
    extract: Extract | None = None,
    on_error: str | None = None,
    organization_id: Arg = None,
    span: str | bool | None = None,
    idempotency_key: Arg = None,
    on_commit: bool | Callable[..., object] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Record ``event_type`` after the decorated (sync or async) function returns.

    What becomes the event: a returned ``CommerceEvent`` as is; a returned ``Order`` like the order
    helpers; a returned mapping becomes ``data`` with ``id``, ``organization_id``, ``user_id`` and
    ``session_id`` lifted to the envelope; ``extract(result, *args, **kwargs)`` overrides that (None =
    no event). ``on_error="checkout.failed"`` records that event when the handler raises (the
    exception still propagates; not on cancellation or shutdown: ``asyncio.CancelledError``,
    ``KeyboardInterrupt``, ``SystemExit``, ``GeneratorExit``...). ``organization_id`` is a default (or a
    callable of the arguments). ``idempotency_key`` (a string, or a callable of the arguments) makes the
    event_id the UUIDv5 of ``[type, organization_id, "key", key]`` (DESIGN.md "Identity of an event").
    The handler's result is never changed (a returned ``CommerceEvent`` is copied).
    ``span=True`` (or a span name) opens a span around the handler when none is recording.
    ``on_commit``: like ``record_event``'s (README "Transactions"), or a callable of the handler's
    arguments returning the session; the ``on_error`` event is never held.
    """
    subject_for(event_type)
    if on_error is not None:
        subject_for(on_error)
    span_name = (f"commerce {event_type}" if span is True else span) or None
    if idempotency_key is not None and not callable(idempotency_key) and (
        not isinstance(idempotency_key, str) or not idempotency_key
    ):
        raise EventValidationError(f"idempotency_key must be a non-empty string or a callable, got {idempotency_key!r}")
    if on_commit is not None and not isinstance(on_commit, bool) and not callable(on_commit):
        raise EventValidationError(
            f"@commerce_event(on_commit=...) takes True, False or a callable of the handler's arguments, got {on_commit!r}"
        )
    recorder = _Recorder(
        event_type,
        extract,
        on_error,
        organization_id,
        span_name if isinstance(span_name, str) else None,
        idempotency_key,
        on_commit,
    )

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        slot = _slot
        record = recorder.record
        record_error = recorder.record_error
        refused = recorder.refused
        # the inline path (see _Recorder.record, which it mirrors): a returned dict becomes the event here
        inline = recorder.inline
        event_type, on_commit, pop_session = recorder.type, recorder.on_commit, recorder.pop_session
        given_type = recorder.event_type  # what build_pending checks and strips until it passed once
        org: Any = recorder.org  # not callables on the inline path
        key: Any = recorder.key
        type_ok = False  # as _Recorder.type_ok, for the inline path (a closure cell: cheaper than an attribute)

        def record_dict(result: dict[str, Any], args: Any, kwargs: Any) -> None:
            """The inline path: a returned dict becomes the event (never raises: a refusal is reported)."""
            nonlocal type_ok
            try:  # the lifted keys leave data: popped from a copy (the handler's dict is never
                data = result.copy()  # changed); build_pending freezes what is left
                pop = data.pop
                pending = build_pending(
                    event_type if type_ok else given_type,  # unchecked: the type as given (stripped there)
                    id=pop("id", None),
                    organization_id=pop("organization_id", None) or org,
                    user_id=pop("user_id", None),
                    session_id=pop("session_id", None) if pop_session else result.get("session_id"),
                    data=data,
                    idempotency_key=key,
                    type_checked=type_ok,
                )
                type_ok = True
                holder = holder_for(on_commit)  # held until the commit, when asked
                if holder is None:
                    emit_pending(pending)  # what hold() does without a holder, one call less
                else:
                    hold(pending, holder)
            except Exception as exc:
                refused(exc, result, args, kwargs)
        if inspect.iscoroutinefunction(fn):
            afn = cast(Callable[P, Awaitable[Any]], fn)
            if recorder.span_name is None:

                @functools.wraps(fn)
                async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                    if not slot.RUNTIME.active():
                        return await afn(*args, **kwargs)
                    try:
                        result = await (afn(*args, **kwargs) if kwargs else afn(*args))  # type: ignore[call-arg]
                    except BaseException as error:
                        record_error(fn, error, args, kwargs)
                        raise
                    if inline and type(result) is dict:
                        record_dict(result, args, kwargs)
                    else:
                        record(result, args, kwargs)
                    return result

            else:

                @functools.wraps(fn)
                async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                    if not slot.RUNTIME.active():
                        return await afn(*args, **kwargs)
                    with recorder.span():
                        try:
                            result = await afn(*args, **kwargs)
                        except BaseException as error:
                            record_error(fn, error, args, kwargs)
                            raise
                        record(result, args, kwargs)
                        return result

            return cast(Callable[P, R], async_wrapper)

        if recorder.span_name is None:

            @functools.wraps(fn)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                if not slot.RUNTIME.active():
                    return fn(*args, **kwargs)
                try:  # no keyword arguments: a plain call (unpacking an empty dict costs on every request)
                    result: Any = fn(*args, **kwargs) if kwargs else fn(*args)  # type: ignore[call-arg]
                except BaseException as error:
                    record_error(fn, error, args, kwargs)
                    raise
                if inline and type(result) is dict:
                    record_dict(result, args, kwargs)
                else:
                    record(result, args, kwargs)
                return result

        else:

            @functools.wraps(fn)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                if not slot.RUNTIME.active():
                    return fn(*args, **kwargs)
                with recorder.span():
                    try:
                        result = fn(*args, **kwargs)
                    except BaseException as error:
                        record_error(fn, error, args, kwargs)
                        raise
                    record(result, args, kwargs)
                    return result

        return cast(Callable[P, R], wrapper)

    return decorate
