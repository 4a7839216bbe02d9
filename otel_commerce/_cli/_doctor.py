"""``otel-commerce doctor``: the effective settings (redacted, with their source) and real checks.

Each check returns a :class:`Check`; a failed one carries one line saying how to fix it. The checks
talk to the real servers (NATS connect + stream info, the collector's ``/health`` and an empty,
authenticated ``POST /events``) and read the OTel SDK's environment and providers.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .._config import Settings, route_url
from .._log import cause_of
from .._redact import MASK, redact, redact_headers, redact_url

__all__ = ["Check", "otel_pipeline_check", "run_checks", "setting_sources", "spool_checks"]

#: The environment variables each setting is read from (first set one wins), see ``_config``.
ENV_NAMES: dict[str, tuple[str, ...]] = {
    "nats_url": ("OTEL_COMMERCE_NATS_URL", "PUBSUB_URL"),
    "collector_endpoint": ("OTEL_COMMERCE_COLLECTOR_ENDPOINT", "ANALYTICS_ENDPOINT"),
    "mode": ("OTEL_COMMERCE_MODE",),
    "pii": ("OTEL_COMMERCE_PII",),
    "nats_token": ("OTEL_COMMERCE_NATS_TOKEN",),
    "nats_user": ("OTEL_COMMERCE_NATS_USER",),
    "nats_password": ("OTEL_COMMERCE_NATS_PASSWORD",),
    "nats_creds": ("OTEL_COMMERCE_NATS_CREDS",),
    "nats_tls_ca": ("OTEL_COMMERCE_NATS_TLS_CA",),
    "nats_tls_cert": ("OTEL_COMMERCE_NATS_TLS_CERT",),
    "nats_tls_key": ("OTEL_COMMERCE_NATS_TLS_KEY",),
    "collector_headers": ("OTEL_COMMERCE_COLLECTOR_HEADERS",),
    "collector_gzip": ("OTEL_COMMERCE_COLLECTOR_GZIP",),
    "queue_size": ("OTEL_COMMERCE_QUEUE_SIZE",),
    "batch_size": ("OTEL_COMMERCE_BATCH_SIZE",),
    "linger_seconds": ("OTEL_COMMERCE_LINGER_MS",),
    "max_attempts": ("OTEL_COMMERCE_MAX_ATTEMPTS",),
    "max_age_seconds": ("OTEL_COMMERCE_MAX_AGE_MS", "OTEL_COMMERCE_MAX_AGE_SECONDS"),  # _SECONDS: deprecated alias
    "max_event_bytes": ("OTEL_COMMERCE_MAX_EVENT_BYTES",),
    "log_body": ("OTEL_COMMERCE_LOG_BODY",),
    "spool": ("OTEL_COMMERCE_SPOOL",),
    "spool_dir": ("OTEL_COMMERCE_SPOOL_DIR",),
    "spool_fsync": ("OTEL_COMMERCE_SPOOL_FSYNC",),
    "spool_fsync_ms": ("OTEL_COMMERCE_SPOOL_FSYNC_MS",),
    "disabled": ("OTEL_COMMERCE_DISABLED",),
    "sdk_disabled": ("OTEL_SDK_DISABLED",),
}

#: Below this, a limit on attribute values truncates rebuilt events (NATS' default max payload).
_MIN_VALUE_LENGTH = 1024 * 1024
_MIN_ATTRIBUTE_COUNT = 64
_LENGTH_LIMITS = {
    "log": ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT"),
    "span": ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT"),
}
_COUNT_LIMITS = {
    "log": ("OTEL_ATTRIBUTE_COUNT_LIMIT", "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT"),
    "span": ("OTEL_ATTRIBUTE_COUNT_LIMIT", "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT"),
}


@dataclass(frozen=True)
class Check:
    """One check: ``ok``, what was found (``detail``) and, when not ok, one line of ``fix``.

    A ``warning`` is ok (the exit code stays 0) but worth acting on: it carries a ``fix`` line too.
    """

    name: str
    ok: bool
    detail: str
    fix: str = ""
    warning: bool = False


def shown_value(name: str, value: Any) -> str:
    """A setting's value as doctor prints it (secrets masked)."""
    if name in ("nats_password", "nats_token"):
        return MASK if value else ""
    if name in ("nats_url", "collector_endpoint"):
        return redact_url(str(value))
    if name == "collector_headers":
        return ",".join(f"{k}={v}" for k, v in redact_headers(value).items())
    return redact(str(value))


def setting_sources(
    settings: Settings, env: Mapping[str, str] | None = None, arguments: Mapping[str, Any] | None = None
) -> list[tuple[str, str, str]]:
    """``(name, shown value, source)`` per setting; source is ``argument``, ``env NAME`` or ``default``."""
    env = os.environ if env is None else env
    given = {k for k, v in (arguments or {}).items() if v is not None}
    rows = []
    for f in fields(settings):
        source = "default"
        if f.name in given:
            source = "argument"
        else:
            for var in ENV_NAMES.get(f.name, ()):
                if env.get(var, "").strip():
                    source = f"env {var}"
                    break
        rows.append((f.name, _effective(f.name, getattr(settings, f.name)), source))
    return rows


def _effective(name: str, value: Any) -> str:
    """The value in force: an unset spool mode is ``spill (default)``, an unset spool directory the resolved one."""
    if name == "spool" and not value:
        return "spill (default)"
    if name == "spool_dir" and not value:
        from .._delivery._spool import default_dir

        return f"{default_dir()} (default)"
    return shown_value(name, value)


# --------------------------------------------------------------------------- NATS
#: Room the default event bound leaves under NATS's default max_payload (headers, GA4/Meta blocks):
#: 1 MiB - 16 KiB, see ``_config.DEFAULT_MAX_EVENT_BYTES``.
_HEADER_ROOM = 16_384


async def _nats_checks(settings: Settings, timeout_seconds: float) -> list[Check]:
    import nats
    from nats.js import errors as js_errors

    from .._model import STREAM_NAME, STREAM_SUBJECTS

    shown = redact_url(settings.nats_url)
    seen: list[BaseException] = []

    async def on_error(exc: Exception) -> None:
        seen.append(exc)

    opts = settings.nats_connect_options()
    servers = opts.pop("servers")
    try:
        nc = await nats.connect(
            servers,
            connect_timeout=timeout_seconds,
            allow_reconnect=False,
            max_reconnect_attempts=1,
            error_cb=on_error,
            **opts,
        )
    except Exception as exc:
        cause = cause_of(exc, seen)
        if "Authorization" in cause or "authentication" in cause.lower():
            fix = "check OTEL_COMMERCE_NATS_USER/_PASSWORD, _TOKEN or _CREDS (or the URL's user part)"
        elif "certificate" in cause.lower() or "SSL" in cause:
            fix = "check OTEL_COMMERCE_NATS_TLS_CA (the server's CA) and the certificate's host name"
        else:
            fix = "start nats-server -js there, or fix OTEL_COMMERCE_NATS_URL"
        return [Check("nats connect", False, f"cannot connect to {shown}: {cause}", fix)]
    checks = [Check("nats connect", True, f"connected to {shown}")]
    limit = int(nc.max_payload or 0)
    needed = settings.max_event_bytes + _HEADER_ROOM
    if limit and needed > limit:  # the sink would reject such events (counted, logged): lost, not retried
        checks.append(
            Check(
                "event size",
                False,
                f"OTEL_COMMERCE_MAX_EVENT_BYTES {settings.max_event_bytes} + {_HEADER_ROOM} bytes of headers is over "
                f"the server's max_payload {limit}: events that large would be rejected",
                "raise max_payload in the nats-server config (e.g. max_payload: 8MB), or lower OTEL_COMMERCE_MAX_EVENT_BYTES",
            )
        )
    try:
        js = nc.jetstream(timeout=timeout_seconds)
        try:
            info = await js.stream_info(STREAM_NAME)
        except js_errors.NotFoundError:
            checks.append(
                Check(
                    "stream",
                    False,
                    f"stream {STREAM_NAME} does not exist (the first event creates it)",
                    "run `otel-commerce bootstrap` to create it now",
                )
            )
            return checks
        except Exception as exc:
            checks.append(
                Check("stream", False, f"JetStream: {cause_of(exc)}", "start nats-server with -js (JetStream)")
            )
            return checks
        subjects = list(info.config.subjects or [])
        if {">", *STREAM_SUBJECTS} & set(subjects):
            checks.append(Check("stream", True, f"{STREAM_NAME} covers {', '.join(STREAM_SUBJECTS)}"))
        else:
            checks.append(
                Check(
                    "stream",
                    False,
                    f"{STREAM_NAME} subjects {subjects} do not cover {', '.join(STREAM_SUBJECTS)}",
                    "run `otel-commerce bootstrap --reconcile`",
                )
            )
        window = float(info.config.duplicate_window or 0.0)
        if window >= settings.max_age_seconds:
            checks.append(
                Check(
                    "duplicate window",
                    True,
                    f"{window:g} s ≥ retry age {settings.max_age_seconds:g} s (exactly-once holds)",
                )
            )
        else:
            checks.append(
                Check(
                    "duplicate window",
                    False,
                    f"{window:g} s < retry age {settings.max_age_seconds:g} s: a late retry can store a duplicate",
                    "run `otel-commerce bootstrap --reconcile` or lower OTEL_COMMERCE_MAX_AGE_SECONDS",
                )
            )
    finally:
        await nc.close()
    return checks


# --------------------------------------------------------------------------- collector
def _collector_checks(settings: Settings, timeout_seconds: float) -> list[Check]:
    import httpx

    base = settings.collector_endpoint.rstrip("/")
    shown = redact_url(base)
    health_url, events_url = route_url(base, "/health"), route_url(base, "/events")
    shown_health, shown_events = redact_url(health_url), redact_url(events_url)
    try:
        with httpx.Client(timeout=timeout_seconds, headers=dict(settings.collector_headers)) as client:
            health = client.get(health_url)
            posted = client.post(events_url, json={"events": []})
    except httpx.HTTPError as exc:
        return [
            Check(
                "collector",
                False,
                f"{shown}: {type(exc).__name__}: {redact(exc)}",
                "start the collector there, or fix OTEL_COMMERCE_COLLECTOR_ENDPOINT",
            )
        ]
    checks = []
    if health.status_code == 200:
        checks.append(Check("collector health", True, f"GET {shown_health}: 200"))
    else:
        checks.append(
            Check(
                "collector health",
                False,
                f"GET {shown_health}: HTTP {health.status_code}",
                "OTEL_COMMERCE_COLLECTOR_ENDPOINT must be the base URL that serves /health and /events",
            )
        )
    if posted.status_code in (401, 403):
        checks.append(
            Check(
                "collector auth",
                False,
                f"POST {shown_events}: HTTP {posted.status_code} (credentials refused)",
                "set OTEL_COMMERCE_COLLECTOR_HEADERS=Authorization=Bearer%20<token> to the collector's token",
            )
        )
    elif posted.status_code in (404, 405):
        checks.append(
            Check(
                "collector auth",
                False,
                f"POST {shown_events}: HTTP {posted.status_code} (no such route)",
                "OTEL_COMMERCE_COLLECTOR_ENDPOINT must be the base URL that serves /events",
            )
        )
    else:
        checks.append(Check("collector auth", True, f"POST {shown_events} accepted our credentials"))
    return checks


# --------------------------------------------------------------------------- OTel SDK
def otel_pipeline_check(env: Mapping[str, str] | None = None) -> Check:
    """Is our processor in this process's OTel SDK pipeline, or will ``opentelemetry-instrument`` add it?"""
    from opentelemetry import _logs

    from .._otel import CommerceLogRecordProcessor
    from .._otel._sdk import log_processors

    env = os.environ if env is None else env
    provider = _logs.get_logger_provider()
    if any(isinstance(p, CommerceLogRecordProcessor) for p in log_processors(provider)):  # type: ignore[arg-type]
        return Check("otel pipeline", True, "our processor is on this process's LoggerProvider")
    import importlib.util

    try:
        instrument = importlib.util.find_spec("opentelemetry.instrumentation") is not None
    except (ImportError, ValueError):
        instrument = False
    if not instrument:
        from .._errors import install_hint

        return Check(
            "otel pipeline",
            True,
            "not in this process: the application must call otel_commerce.configure() "
            f"(opentelemetry-instrument is not installed; for zero-code set-up: {install_hint('instrument')})",
        )
    exporters = [e.strip() for e in env.get("OTEL_LOGS_EXPORTER", "").split(",")]
    if "commerce" in exporters:
        return Check("otel pipeline", True, "opentelemetry-instrument will install the commerce exporter")
    if "commerce" not in [d.strip() for d in env.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",")]:
        return Check(
            "otel pipeline",
            True,
            "under opentelemetry-instrument the commerce instrumentor adds our processor to the distro's pipeline",
        )
    return Check(
        "otel pipeline",
        True,
        "not in this process: the application must call otel_commerce.configure() "
        "or run under opentelemetry-instrument with the commerce instrumentor enabled "
        "(remove commerce from OTEL_PYTHON_DISABLED_INSTRUMENTATIONS)",
    )


def _limit_checks(settings: Settings, env: Mapping[str, str]) -> list[Check]:
    mode = "span" if settings.mode == "span" else "log"
    checks = []
    modes = ("log", "span") if settings.mode == "both" else (mode,)
    names = dict.fromkeys(n for m in modes for n in _LENGTH_LIMITS[m])
    for name in names:
        raw = env.get(name, "").strip()
        if raw.isdigit() and int(raw) < _MIN_VALUE_LENGTH:
            checks.append(
                Check(
                    "attribute limits",
                    False,
                    f"{name}={raw}: longer event attributes (items, data) are truncated before we rebuild events",
                    f"unset {name} (or raise it to at least {_MIN_VALUE_LENGTH})",
                )
            )
    for name in dict.fromkeys(n for m in modes for n in _COUNT_LIMITS[m]):
        raw = env.get(name, "").strip()
        if raw.isdigit() and int(raw) < _MIN_ATTRIBUTE_COUNT:
            checks.append(
                Check(
                    "attribute limits",
                    False,
                    f"{name}={raw}: attributes beyond the limit are dropped before we rebuild events",
                    f"unset {name} (or raise it to at least {_MIN_ATTRIBUTE_COUNT})",
                )
            )
    if not checks:
        checks.append(Check("attribute limits", True, "no OTel attribute limit truncates events"))
    return checks


# --------------------------------------------------------------------------- spool
def _creatable(directory: Path) -> bool:
    """Whether ``directory`` exists writable, or its nearest existing ancestor lets us create it."""
    path = directory
    while not path.exists() and path != path.parent:
        path = path.parent
    return os.access(path, os.W_OK | os.X_OK)


def spool_checks(settings: Settings) -> list[Check]:
    """The spool in force (mode, directory, its filesystem) and the spooled events waiting there.

    A directory on tmpfs / an overlay is a warning (``filesystem_warning``): its events do not survive a
    reboot or a rescheduled container. Events left by processes that are gone are a warning too.
    """
    from .._delivery._spool import default_dir, filesystem_warning, scan

    if settings.spool == "off":
        return [Check("spool", True, "off (OTEL_COMMERCE_SPOOL=off): events queued in memory die with the process")]
    directory = Path(settings.spool_dir) if settings.spool_dir else default_dir()
    mode = settings.spool or "spill (default)"
    if not _creatable(directory):
        lost = "the spool is off" if not settings.spool else "configure() raises"
        return [
            Check(
                "spool",
                False,
                f"mode {mode}: {directory} cannot be created or written ({lost})",
                "set OTEL_COMMERCE_SPOOL_DIR to a writable directory on a persistent volume",
            )
        ]
    where = f"mode {mode}, directory {directory}" + ("" if directory.is_dir() else " (created on first use)")
    warning = filesystem_warning(directory)
    checks = [
        Check(
            "spool",
            True,
            f"mode {mode}; {warning}" if warning else where,
            f"mount a persistent volume at {directory} or set OTEL_COMMERCE_SPOOL_DIR to one" if warning else "",
            warning=warning is not None,
        )
    ]
    if settings.spool_fsync != "none" and settings.spool != "wal":
        checks.append(
            Check(
                "spool fsync",
                True,
                f"OTEL_COMMERCE_SPOOL_FSYNC={settings.spool_fsync} is ignored: it applies to spool mode wal only "
                f"(the spool is {mode})",
                "set OTEL_COMMERCE_SPOOL=wal, or unset OTEL_COMMERCE_SPOOL_FSYNC",
                warning=True,
            )
        )
    checks.append(_backlog_check(settings, scan(directory)))
    return checks


def _backlog_check(settings: Settings, files: list[Any]) -> Check:
    """Spooled events: those of this service and these sinks (its spool key: replayed at its next start or by
    ``spool replay``), and those of other keys (another service or other sink settings: never replayed here)."""
    from .._runtime._state import spool_key

    try:
        key = spool_key(settings)
        digest = key.digest
    except Exception:  # pragma: no cover - the sink checks above say what is wrong
        key, digest = None, ""
    mine = [f for f in files if f.path.name.startswith(digest + "-")] if digest else []
    others = [f for f in files if f not in mine]
    gone = sum(f.events for f in mine if not f.alive)
    other_gone = sum(f.events for f in others if not f.alive)
    corrupt = sum(f.corrupt for f in files)
    if not files:
        return Check("spool backlog", True, "no spooled event waiting")
    parts = []
    if key is not None:
        parts.append(
            f"{sum(f.events for f in mine)} spooled event(s) for this service and these sinks "
            f"(key {digest}: {key.service})" + (f", {gone} of them left by processes that are gone" if gone else "")
        )
    if others:
        keys = len({f.path.name.split("-", 1)[0] for f in others})
        parts.append(
            f"{sum(f.events for f in others)} event(s) of {keys} other sink key(s) (another service or other sink "
            "settings)" + (f", {other_gone} of them left by processes that are gone" if other_gone else "")
        )
    if corrupt:
        parts.append(f"{corrupt} corrupt record(s) skipped")
    fixes = []
    if gone:
        fixes.append(
            "this service's: replayed when it starts again (at configure()), or now with `otel-commerce spool replay`"
        )
    if other_gone:
        fixes.append(
            "other keys' (`otel-commerce spool stats` lists them): `otel-commerce spool replay` with that service's "
            "settings (OTEL_SERVICE_NAME, sink URLs), or `otel-commerce spool drop --before TIME` to delete them"
        )
    return Check("spool backlog", True, "; ".join(parts), "; ".join(fixes), warning=bool(gone or other_gone))


def run_checks(
    settings: Settings,
    *,
    env: Mapping[str, str] | None = None,
    timeout_seconds: float = 3.0,
    sinks_disabled: bool = False,
) -> list[Check]:
    """Every check for ``settings``; never raises (a failing check says why).

    ``sinks_disabled``: reading the environment disabled a sink (an invalid variable, reported by the
    caller): then "no sink" points at that error instead of asking to set an endpoint.
    """
    env = os.environ if env is None else env
    checks: list[Check] = []
    if not settings.has_sink and sinks_disabled:
        checks.append(
            Check(
                "sinks",
                False,
                "no sink in force: the configured sink is disabled by the invalid setting above",
                "fix the variable named above",
            )
        )
    elif not settings.has_sink:
        checks.append(
            Check(
                "sinks",
                False,
                "no sink configured: events go nowhere",
                "set OTEL_COMMERCE_NATS_URL and/or OTEL_COMMERCE_COLLECTOR_ENDPOINT",
            )
        )
    if settings.nats_url:
        checks += asyncio.run(_nats_checks(settings, timeout_seconds))
    if settings.collector_endpoint:
        checks += _collector_checks(settings, timeout_seconds)
    if settings.has_sink:
        checks += spool_checks(settings)
    checks.append(otel_pipeline_check(env))
    checks += _limit_checks(settings, env)
    uwsgi = uwsgi_check()
    if uwsgi is not None:
        checks.append(uwsgi)
    return checks


def uwsgi_check() -> Check | None:
    """Under uWSGI (``run_checks`` called from the app): are threads enabled? None outside uWSGI."""
    from .._runtime._lifecycle import UWSGI_HINT, uwsgi_without_threads

    if "uwsgi" not in sys.modules:
        return None
    if uwsgi_without_threads():
        return Check("uwsgi threads", False, "uWSGI runs without threads: the delivery thread never runs", UWSGI_HINT)
    return Check("uwsgi threads", True, "uWSGI runs with threads enabled")
