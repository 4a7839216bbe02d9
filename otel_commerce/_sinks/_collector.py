"""``CollectorSink``: events to the Hanzo analytics collector over HTTP (facts §4).

Batches go to ``POST {endpoint}/events`` as ``{"events": [...]}``; a collector without that route
(404 / 405) is remembered and served one ``POST {endpoint}/event`` per event. 2xx = delivered;
network errors, 408, 429 (with ``Retry-After``) and 5xx are transient; other 4xx are rejections.

Isolation of a bad event, without amplification:

- a 400 whose body names the refused events (our collector: ``{"rejected": [{"index": i, "error":
  ...}]}``) rejects exactly those; the others were stored by the server and are delivered;
- otherwise a 400/413 on a batch is bisected only while the two halves answer differently: when both
  halves fail the same way (a proxy refusing everything) both are rejected — at most 3 requests per
  batch attempt; one bad event in ``n`` costs at most ``2·log2(n)+1`` requests;
- a 5xx is never bisected during an outage: only after the same events failed with a 5xx
  :data:`POISON_AFTER_FAILURES` times *and* an empty batch (a probe that is not a bisection) succeeds
  — the server is up and fails on this batch — is the batch bisected (while the halves answer
  differently); an event isolated that way is rejected alone.

httpx errors become ours in :func:`_translate` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip as gzip_module
import importlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import orjson

from .. import _log
from .._config import route_url
from .._delivery import Outcome, Prepared, abandon, is_retryable_status, parse_retry_after
from .._errors import DeliveryError, EventValidationError, PermanentDeliveryError, TransientDeliveryError
from .._model import Pending, collector_from_event
from .._redact import redact_url

__all__ = ["POISON_AFTER_FAILURES", "CollectorSink"]

logger = logging.getLogger("otel_commerce")

_DEFAULT_TIMEOUT_SECONDS = 5.0
#: After falling back to ``/event``, try ``/events`` again this often (the collector may be upgraded).
_BATCH_ROUTE_RETRY_SECONDS = 300.0
_SPLIT_STATUS = frozenset({400, 413})
#: A batch failing with a 5xx this many times in a row is probed for a poison event (see module doc).
POISON_AFTER_FAILURES = 3
_MAX_TRACKED_FAILURES = 100_000
_MISSING_ROUTE_STATUS = frozenset({404, 405})
#: Imported lazily by httpx on the first request: imported by ``warm()`` on the caller's thread instead.
_LAZY_MODULES = (
    "anyio._backends._asyncio",
    "anyio.streams.tls",
    "anyio.streams.stapled",
    "anyio.streams.memory",
    "anyio.to_thread",
    "anyio.lowlevel",
)


def _translate(exc: BaseException, what: str) -> DeliveryError:
    """The one place httpx errors become ours (all transient: network, timeouts, protocol)."""
    if isinstance(exc, DeliveryError):
        return exc
    err = TransientDeliveryError(f"{what}: {type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err


def _status_error(response: httpx.Response, what: str) -> DeliveryError | None:
    """None for 2xx, else a transient or permanent error carrying the status and the server's message."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    message = _server_message(response)
    text = f"{what}: HTTP {status}" + (f": {message}" if message else "")
    if status == 404:
        text += " (is the collector endpoint right? it should be the base URL the collector serves /events under)"
    if is_retryable_status(status):
        return TransientDeliveryError(
            text, status=status, retry_after=parse_retry_after(response.headers.get("retry-after"))
        )
    return PermanentDeliveryError(text, status=status)


def _refused_indexes(response: httpx.Response, count: int) -> dict[int, str] | None:
    """``{index: message}`` from our collector's ``{"rejected": [{"index": i, "error": ...}]}``, else None."""
    try:
        body = response.json()
    except Exception:
        return None
    rejected = body.get("rejected") if isinstance(body, dict) else None
    if not isinstance(rejected, list) or not rejected:
        return None
    out: dict[int, str] = {}
    for item in rejected:
        index = item.get("index") if isinstance(item, dict) else None
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
            return None  # not the shape we know: do not trust any of it
        out[index] = str(item.get("error", ""))[:200]
    return out


def _refused_indexes_none(answers: Sequence[httpx.Response | DeliveryError]) -> bool:
    return all(isinstance(a, httpx.Response) and _refused_indexes(a, 1 << 30) is None for a in answers)


def _server_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except Exception:
        return response.text[:200].strip()
    if isinstance(body, dict):
        for key in ("error", "message", "detail"):
            if body.get(key):
                return str(body[key])[:200]
    return str(body)[:200]


class CollectorSink:
    """Delivers collector payloads (``Client.emit_*`` or mapped envelopes) to ``{endpoint}/events``."""

    name = "collector"

    def __init__(
        self,
        endpoint: str,
        *,
        headers: Mapping[str, str] | None = None,
        gzip: bool = False,
        timeout_seconds: float = _DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        if not endpoint or not endpoint.startswith(("http://", "https://")):
            raise ValueError(f"collector endpoint must be an http(s) URL, got {endpoint!r}")
        self._endpoint = endpoint.rstrip("/")
        self._urls = {route: route_url(self._endpoint, route) for route in ("/events", "/event")}
        self._headers = {"Content-Type": "application/json", **dict(headers or {})}
        if gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._gzip = gzip
        self._timeout = timeout_seconds
        self._client: httpx.AsyncClient | None = None
        _log.setup()  # httpx's per-request INFO lines never show from our client
        self._warm: httpx.AsyncClient | None = None  # built by warm() on the caller's thread
        self._started: asyncio.Event | None = None
        self._single_since: float | None = None  # monotonic time we fell back to /event
        self._server_failures: dict[bytes, int] = {}  # item -> consecutive 5xx answers to batches holding it

    @property
    def endpoint(self) -> str:
        return self._endpoint

    def spool_identity(self) -> str:
        """This sink's part of the spool key: its endpoint."""
        return "collector:" + self._endpoint

    # ------------------------------------------------------------------ encoding (delivery thread)
    def prepare(self, pending: Pending) -> Prepared | None:
        payload = pending.collector
        if payload is None:
            if pending.event is None:
                return None
            payload = collector_from_event(pending.event, pending.items)
        try:
            raw = orjson.dumps(payload)
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise EventValidationError(f"collector payload is not JSON-serialisable: {exc}") from exc
        return raw, len(raw) + 1

    # ------------------------------------------------------------------ lifecycle
    def warm(self) -> None:
        """Build the HTTP client (imports, TLS context) on the calling thread, before the delivery thread starts."""
        for name in _LAZY_MODULES:
            with contextlib.suppress(ImportError):  # another anyio layout: imported on first use instead
                importlib.import_module(name)
        if self._warm is None and self._client is None:
            self._warm = httpx.AsyncClient(timeout=self._timeout, headers=self._headers)

    async def start(self) -> None:
        client, self._warm = self._warm, None
        self._client = client or httpx.AsyncClient(timeout=self._timeout, headers=self._headers)
        if self._started is not None:
            self._started.set()

    def ready(self) -> bool:
        return self._client is not None

    async def wait_ready(self, timeout_seconds: float) -> bool:
        if self._client is None:
            if self._started is None:
                self._started = asyncio.Event()
            try:
                await asyncio.wait_for(self._started.wait(), timeout_seconds)
            except asyncio.TimeoutError:
                return False
        return self.ready()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def forget(self) -> None:
        abandon((self._client, self._warm, self._started))
        self._client = None
        self._warm = None
        self._started = None

    # ------------------------------------------------------------------ sending
    async def send(self, items: Sequence[Any]) -> list[Outcome]:
        if self._client is None:
            return [TransientDeliveryError("collector: not started")] * len(items)
        if self._single_since is not None and time.monotonic() - self._single_since > _BATCH_ROUTE_RETRY_SECONDS:
            self._single_since = None
        results: list[Outcome] = [None] * len(items)
        if self._single_since is None:
            await self._send_batch(items, 0, len(items), results)
        else:
            await self._send_each(items, 0, len(items), results)
        return results

    async def _post(self, route: str, body: bytes) -> httpx.Response:
        assert self._client is not None
        if self._gzip:
            body = gzip_module.compress(body, compresslevel=6)
        return await self._client.post(self._urls[route], content=body)

    async def _post_batch(self, items: Sequence[Any], lo: int, hi: int) -> httpx.Response | DeliveryError:
        body = b'{"events":[' + b",".join(items[lo:hi]) + b"]}"
        try:
            return await self._post("/events", body)
        except Exception as exc:
            return _translate(exc, f"POST {redact_url(self._urls['/events'])} ({hi - lo} events)")

    async def _send_batch(self, items: Sequence[Any], lo: int, hi: int, results: list[Outcome]) -> None:
        failures = self._server_failures
        if hi - lo > 0 and min(failures.get(items[i], 0) for i in range(lo, hi)) >= POISON_AFTER_FAILURES:
            probe = await self._probe()
            if probe is not None:  # still an outage: the probe replaced this attempt's request
                self._fill(results, lo, hi, probe)
                return
        answer = await self._post_batch(items, lo, hi)
        if (
            isinstance(answer, httpx.Response)
            and answer.status_code >= 500
            and min(failures.get(items[i], 0) for i in range(lo, hi)) >= POISON_AFTER_FAILURES
        ):  # the server is up (the probe passed) and fails on this batch again: it holds a poison event
            await self._isolate_server_failure(items, lo, hi, results)
            return
        if isinstance(answer, DeliveryError):
            self._fill(results, lo, hi, answer)
            return
        if answer.status_code in _MISSING_ROUTE_STATUS and self._single_since is None and lo == 0:
            _log.failure(  # a wrong path shows here (and as rejected http_404 if /event is missing too)
                self.name,
                "wrong path",
                f"POST {redact_url(self._urls['/events'])} ({hi - lo} events) answered HTTP {answer.status_code}: "
                "sending one event per request",
            )
            self._single_since = time.monotonic()
            await self._send_each(items, lo, hi, results)
            return
        self._track(items, lo, hi, answer.status_code)
        error = _status_error(answer, f"POST {redact_url(self._urls['/events'])} ({hi - lo} events)")
        if error is None:
            return
        if answer.status_code in _SPLIT_STATUS:
            await self._isolate_rejection(items, lo, hi, answer, error, results)
            return
        self._fill(results, lo, hi, error)

    def _track(self, items: Sequence[Any], lo: int, hi: int, status: int) -> None:
        """Count consecutive 5xx answers per item (forgotten on any other answer)."""
        failures = self._server_failures
        if status >= 500:
            if len(failures) > _MAX_TRACKED_FAILURES:
                failures.clear()
            for i in range(lo, hi):
                failures[items[i]] = failures.get(items[i], 0) + 1
        elif failures:
            for i in range(lo, hi):
                failures.pop(items[i], None)

    async def _probe(self) -> DeliveryError | None:
        """POST an empty batch: None when the server answers 2xx (it is up: not an outage), else the error."""
        what = f"POST {redact_url(self._urls['/events'])} (empty probe)"
        try:
            response = await self._post("/events", b'{"events":[]}')
        except Exception as exc:
            return _translate(exc, what)
        error = _status_error(response, what)
        if error is not None and not isinstance(error, TransientDeliveryError):
            return TransientDeliveryError(str(error), status=error.status)
        return error

    async def _isolate_rejection(
        self,
        items: Sequence[Any],
        lo: int,
        hi: int,
        answer: httpx.Response,
        error: DeliveryError,
        results: list[Outcome],
    ) -> None:
        """[lo, hi) was answered 400/413: reject what the server names, else bisect while halves differ."""
        named = _refused_indexes(answer, hi - lo)
        if named is not None:
            for index, message in named.items():
                results[lo + index] = PermanentDeliveryError(
                    f"POST {redact_url(self._urls['/events'])}: HTTP {answer.status_code}: event refused: {message}",
                    status=answer.status_code,
                )
            return
        if hi - lo == 1:
            results[lo] = error
            return
        mid = (lo + hi) // 2
        halves = [(lo, mid), (mid, hi)]
        answers = [await self._post_batch(items, a, b) for a, b in halves]
        errors: list[DeliveryError | None] = []
        for (a, b), half in zip(halves, answers, strict=True):
            if isinstance(half, DeliveryError):
                errors.append(half)
            else:
                self._track(items, a, b, half.status_code)
                errors.append(_status_error(half, f"POST {redact_url(self._urls['/events'])} ({b - a} events)"))
        statuses = [a.status_code if isinstance(a, httpx.Response) else None for a in answers]
        if statuses[0] == statuses[1] and statuses[0] in _SPLIT_STATUS and _refused_indexes_none(answers):
            for (a, b), err in zip(halves, errors, strict=True):  # both halves fail the same way: reject both
                assert err is not None
                self._fill(results, a, b, err)
            return
        for (a, b), half, err in zip(halves, answers, errors, strict=True):
            if err is None:
                continue
            if isinstance(half, httpx.Response) and half.status_code in _SPLIT_STATUS:
                await self._isolate_rejection(items, a, b, half, err, results)
            else:
                self._fill(results, a, b, err)

    async def _isolate_server_failure(self, items: Sequence[Any], lo: int, hi: int, results: list[Outcome]) -> None:
        """The server is up but fails on [lo, hi) again and again: bisect while the halves answer differently."""
        if hi - lo == 1:
            self._server_failures.pop(items[lo], None)
            results[lo] = PermanentDeliveryError(
                f"POST {redact_url(self._urls['/events'])}: the server failed on this event {POISON_AFTER_FAILURES}+ times "
                "while it accepted others: rejected as a poison event",
                status=500,
            )
            return
        mid = (lo + hi) // 2
        halves = [(lo, mid), (mid, hi)]
        answers = [await self._post_batch(items, a, b) for a, b in halves]
        failed = []
        for (a, b), half in zip(halves, answers, strict=True):
            if isinstance(half, DeliveryError):
                self._fill(results, a, b, half)
                continue
            err = _status_error(half, f"POST {redact_url(self._urls['/events'])} ({b - a} events)")
            if err is None:
                self._track(items, a, b, half.status_code)
            elif half.status_code >= 500:
                failed.append((a, b, err))
            elif half.status_code in _SPLIT_STATUS:
                await self._isolate_rejection(items, a, b, half, err, results)
            else:
                self._fill(results, a, b, err)
        if len(failed) == 2:  # both halves fail alike: no isolation possible now, retry later
            for a, b, err in failed:
                self._track(items, a, b, 500)
                self._fill(results, a, b, err)
            return
        for a, b, _err in failed:
            await self._isolate_server_failure(items, a, b, results)

    async def _send_each(self, items: Sequence[Any], lo: int, hi: int, results: list[Outcome]) -> None:
        what = f"POST {redact_url(self._urls['/event'])}"
        for i in range(lo, hi):
            try:
                response = await self._post("/event", items[i])
            except Exception as exc:
                self._fill(results, i, hi, _translate(exc, what))
                return
            error = _status_error(response, what)
            results[i] = error
            if isinstance(error, TransientDeliveryError):  # the collector is struggling: stop here
                self._fill(results, i, hi, error)
                return

    @staticmethod
    def _fill(results: list[Outcome], lo: int, hi: int, error: DeliveryError) -> None:
        for i in range(lo, hi):
            results[i] = error
