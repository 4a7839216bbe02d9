"""Settings, read from the environment in one place (so ``opentelemetry-instrument`` needs no code).

=====================================  ===========================================================
``OTEL_COMMERCE_NATS_URL``             NATS server(s), comma-separated (fallback ``PUBSUB_URL``)
``OTEL_COMMERCE_COLLECTOR_ENDPOINT``   analytics collector base URL (fallback ``ANALYTICS_ENDPOINT``)
``OTEL_COMMERCE_MODE``                 ``log`` (default) | ``span`` | ``both``
``OTEL_COMMERCE_PII``                  ``hash`` (default) | ``drop`` | ``keep``
``OTEL_COMMERCE_NATS_TOKEN``           token auth (a token in the URL's user part also works)
``OTEL_COMMERCE_NATS_USER`` / ``_PASSWORD``  user/password auth
``OTEL_COMMERCE_NATS_CREDS``           path of a .creds file (JWT + nkey)
``OTEL_COMMERCE_NATS_TLS_CA`` / ``_CERT`` / ``_KEY``  TLS files
``OTEL_COMMERCE_COLLECTOR_HEADERS``    ``k=v,k2=v2`` (URL-encoded values), e.g. ``Authorization=Bearer%20x``
``OTEL_COMMERCE_COLLECTOR_GZIP``       ``true`` to gzip collector batches
``OTEL_COMMERCE_QUEUE_SIZE``           delivery queue bound (default 10000)
``OTEL_COMMERCE_BATCH_SIZE``           events per batch (default 512)
``OTEL_COMMERCE_LINGER_MS``            batching delay in ms; unset = adaptive (default), 0 = no wait, N = N ms
``OTEL_COMMERCE_MAX_ATTEMPTS``         attempts per event and sink before it is dropped (default 10)
``OTEL_COMMERCE_MAX_AGE_MS``           age after which an undelivered event is dropped (default 300000);
                                       ``OTEL_COMMERCE_MAX_AGE_SECONDS`` is a deprecated alias
``OTEL_COMMERCE_MAX_EVENT_BYTES``      bound of an event's estimated encoded size (default 1 MiB - 16 KiB)
``OTEL_COMMERCE_CUSTOM_TYPES``         comma-separated custom types allowed in catalog namespaces
``OTEL_COMMERCE_PHONE_REGION``         region for phones without a country code (``US``; needs ``[phone]``)
``OTEL_COMMERCE_SPOOL``                ``off`` | ``spill`` (default when the spool dir is writable) | ``wal``
``OTEL_COMMERCE_SPOOL_DIR``            spool directory (default: the per-user state dir + ``/spool``)
``OTEL_COMMERCE_SPOOL_FSYNC``          ``none`` (default) | ``grouped`` | ``always``
``OTEL_COMMERCE_SPOOL_FSYNC_MS``       interval of the ``grouped`` fsync in milliseconds (default 100)
``OTEL_COMMERCE_EXIT_TIMEOUT_MS``      one deadline for all exit work, in milliseconds (default 5000)
``OTEL_COMMERCE_SIGNALS``              ``false`` to leave SIGTERM / SIGHUP alone (default ``true``)
=====================================  ===========================================================

Invalid values follow two rules (the first is OpenTelemetry's rule for its own env settings):

- numeric and enum settings: a WARNING naming the variable and the default used instead;
- endpoint, TLS, credential and header settings: that sink is disabled with an ERROR naming the
  variable; the other sink is unaffected. Never a silent downgrade to plaintext or no auth.

Durations in the environment are milliseconds (as OpenTelemetry's); the Python API takes seconds.
``Settings(...)`` / ``configure(...)`` arguments are strict: any invalid one raises
:class:`ConfigurationError`.
"""

from __future__ import annotations

import logging
import math
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from ._errors import ConfigurationError
from ._redact import MASK, redact, redact_headers, redact_url, register_secret

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "MODES", "PII_POLICIES", "Settings", "route_url"]

logger = logging.getLogger("otel_commerce")

def route_url(endpoint: str, route: str) -> str:
    """``endpoint`` with ``route`` (``"/events"``) appended to its *path*; query and fragment kept.

    ``http://h:8091/base?token=q`` + ``/events`` → ``http://h:8091/base/events?token=q`` (string
    concatenation would give ``…?token=q/events``, a 404 at the collector).
    """
    parts = urlsplit(endpoint)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + route))


Mode = Literal["log", "span", "both"]
PiiPolicy = Literal["hash", "drop", "keep"]
MODES: tuple[Mode, ...] = ("log", "span", "both")
PII_POLICIES: tuple[PiiPolicy, ...] = ("hash", "drop", "keep")
LogBody = Literal["none", "envelope"]
LOG_BODIES: tuple[LogBody, ...] = ("none", "envelope")
SPOOL_MODES = ("", "off", "spill", "wal")  # "": spill when the directory is writable, else off
SPOOL_FSYNC = ("none", "grouped", "always")

_DEFAULT_QUEUE_SIZE = 10_000
_DEFAULT_BATCH_SIZE = 512
#: None = adaptive linger: a batch leaves at once when its lane is idle; events arriving while a send is in
#: flight make up the next batch (README "Settings").
_DEFAULT_LINGER_SECONDS: float | None = None
_DEFAULT_MAX_ATTEMPTS = 10
_DEFAULT_MAX_AGE_SECONDS = 300.0  # below the 10-minute duplicate window
#: NATS's default max_payload (1 MiB) minus room for headers and the GA4/Meta blocks.
DEFAULT_MAX_EVENT_BYTES = 1_048_576 - 16_384
#: Upper bound of ``max_event_bytes``: half NATS's largest ``max_payload`` (64 MiB), so an event, its
#: GA4/Meta blocks and its spool record (read back up to 64 MiB) always fit where they go.
MAX_EVENT_BYTES_LIMIT = 32 * 1_048_576
_NATS_SCHEMES = ("nats://", "tls://", "ws://", "wss://")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_DEFAULT_EXIT_TIMEOUT_SECONDS = 5.0  # Kubernetes' default grace period is 30 s: leave the app most of it


def _first(env: Mapping[str, str], *names: str) -> tuple[str, str]:
    """``(value, name)`` of the first non-empty variable of ``names`` (``("", names[0])`` when none is set)."""
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value, name
    return "", names[0]


def _fallback(name: str, raw: str, why: str, default: Any) -> Any:
    logger.warning("otel-commerce: %s=%r is invalid (%s); using the default %r", name, redact(raw), why, default)
    return default


def _int(env: Mapping[str, str], name: str, default: int, *, maximum: int | None = None) -> int:
    """A positive integer setting (at most ``maximum``); invalid → WARNING and ``default``."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        return int(_fallback(name, raw, "not an integer", default))
    if value < 1:
        return int(_fallback(name, raw, "must be at least 1", default))
    if maximum is not None and value > maximum:
        return int(_fallback(name, raw, f"must be at most {maximum}", default))
    return value


def _ms(env: Mapping[str, str], name: str, default_seconds: float | None, *, allow_zero: bool) -> float | None:
    """A duration in milliseconds, returned in seconds; None when unset; invalid → WARNING and the default
    (``default_seconds`` None: the default is "unset", e.g. adaptive linger)."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        return _ms_fallback(name, raw, "not a number of milliseconds", default_seconds)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        why = "must be a finite number of milliseconds " + (">= 0" if allow_zero else "> 0")
        return _ms_fallback(name, raw, why, default_seconds)
    return value / 1000


def _ms_fallback(name: str, raw: str, why: str, default_seconds: float | None) -> float | None:
    if default_seconds is None:  # the default is the unset behaviour (adaptive linger)
        logger.warning("otel-commerce: %s=%r is invalid (%s); using the default (unset: adaptive)", name, redact(raw), why)
        return None
    return float(_fallback(name, raw, why, default_seconds * 1000)) / 1000


def _enum(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if raw.lower() not in choices:
        return str(_fallback(name, raw, "expected one of " + ", ".join(choices), default))
    return raw.lower()


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    return bool(_fallback(name, raw, "expected true or false", default))


def parse_headers(raw: str, name: str = "OTEL_COMMERCE_COLLECTOR_HEADERS") -> dict[str, str]:
    """Parse ``k=v,k2=v2`` (OTel's header list format, values URL-encoded); raises ConfigurationError.

    The error names the variable and the position, never a value (headers carry credentials).
    """
    headers: dict[str, str] = {}
    for position, part in enumerate(raw.split(","), 1):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(
                f"{name}: entry {position} is not key=value (the format: name=value pairs separated by "
                "commas, values URL-encoded, a space as %20 — not `Name: value`)"
            )
        headers[unquote(key.strip())] = unquote(value.strip())
    return headers


def _nats_url_problem(url: str) -> str | None:
    for part in filter(None, (u.strip() for u in url.split(","))):
        if not part.startswith(_NATS_SCHEMES):
            return f"NATS URL {redact_url(part.split('@')[-1])!r} must start with nats://, tls://, ws:// or wss://"
    return None


def _collector_endpoint_problem(url: str) -> str | None:
    if not url.startswith(("http://", "https://")) or len(url) <= len("https://"):
        return f"collector endpoint {redact_url(url.split('@')[-1])!r} must be an http(s) URL"
    return None


def _readable_file(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.R_OK)


def _nats_security_problem(s: Settings) -> tuple[str, str] | None:
    """``(variable, problem)`` for unusable NATS TLS / credential settings (never echoing a secret)."""
    if s.nats_password and not s.nats_user:
        return "OTEL_COMMERCE_NATS_PASSWORD", "a password without OTEL_COMMERCE_NATS_USER"
    if s.nats_creds and not _readable_file(s.nats_creds):
        return "OTEL_COMMERCE_NATS_CREDS", f"no readable credentials file at {s.nats_creds!r}"
    if s.nats_tls_key and not s.nats_tls_cert:
        return "OTEL_COMMERCE_NATS_TLS_KEY", "a client key without OTEL_COMMERCE_NATS_TLS_CERT"
    for var, path in (
        ("OTEL_COMMERCE_NATS_TLS_CA", s.nats_tls_ca),
        ("OTEL_COMMERCE_NATS_TLS_CERT", s.nats_tls_cert),
        ("OTEL_COMMERCE_NATS_TLS_KEY", s.nats_tls_key),
    ):
        if path and not _readable_file(path):
            return var, f"no readable file at {path!r}"
    if s.nats_tls_ca or s.nats_tls_cert:
        try:
            s.tls_context()
        except (ssl.SSLError, OSError, ValueError) as exc:
            var = "OTEL_COMMERCE_NATS_TLS_CERT" if s.nats_tls_cert else "OTEL_COMMERCE_NATS_TLS_CA"
            return var, f"unusable TLS files: {exc}"
    return None


@dataclass(frozen=True)
class Settings:
    """Everything otel-commerce can be configured with; ``Settings.from_env()`` reads the environment.

    Durations are in seconds here (``linger_seconds`` >= 0 or None = adaptive, ``max_age_seconds`` > 0); the
    environment gives them in milliseconds. Construction raises :class:`ConfigurationError` for any invalid value.
    """

    nats_url: str = ""
    collector_endpoint: str = ""
    mode: Mode = "log"
    pii: PiiPolicy = "hash"
    nats_token: str = ""
    nats_user: str = ""
    nats_password: str = ""
    nats_creds: str = ""
    nats_tls_ca: str = ""
    nats_tls_cert: str = ""
    nats_tls_key: str = ""
    collector_headers: Mapping[str, str] = field(default_factory=dict)
    collector_gzip: bool = False
    queue_size: int = _DEFAULT_QUEUE_SIZE
    batch_size: int = _DEFAULT_BATCH_SIZE
    #: None (default): adaptive linger; 0: no wait; N: wait up to N seconds for a fuller batch
    linger_seconds: float | None = _DEFAULT_LINGER_SECONDS
    max_attempts: int = _DEFAULT_MAX_ATTEMPTS
    max_age_seconds: float = _DEFAULT_MAX_AGE_SECONDS
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    #: ``none`` (default: details in attributes only) or ``envelope`` (also today's body, for old readers)
    log_body: LogBody = "none"
    #: ``OTEL_COMMERCE_DISABLED``: no recording, no delivery, no thread (a counted no-op)
    disabled: bool = False
    #: ``OTEL_SDK_DISABLED``: no OTel records / span events / metrics of ours; delivery goes direct
    sdk_disabled: bool = False
    #: ``OTEL_COMMERCE_ON_COMMIT``: events wait for the database transaction in progress (README "Transactions")
    on_commit: bool = False

    spool: str = ""
    spool_dir: str = ""
    spool_fsync: str = "none"
    spool_fsync_ms: float = 100.0
    exit_timeout_seconds: float = _DEFAULT_EXIT_TIMEOUT_SECONDS
    handle_signals: bool = True

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "str" and not isinstance(value, str):
                raise ConfigurationError(f"{f.name} must be a string, got {type(value).__name__}")
        # registered before any other check can raise, so that no message below can show them
        register_secret(self.nats_token, self.nats_password)  # masked in every otel-commerce message
        if isinstance(self.collector_headers, Mapping):
            headers = self.collector_headers.items()
            # every value: a header whose name looks harmless (x-honeycomb-team, X-Dsn) may still be a key
            register_secret(*(v for _, v in headers if isinstance(v, str)))
        for url in (*self.nats_url.split(","), self.collector_endpoint):
            if "@" in url.partition("://")[2].partition("/")[0]:  # credentials in a URL: its user-info part
                userinfo = url.partition("://")[2].rpartition("@")[0]
                register_secret(userinfo.partition(":")[2] or userinfo)  # the password, or a token
        if self.log_body not in LOG_BODIES:
            raise ConfigurationError(f"log_body must be one of {LOG_BODIES}, got {self.log_body!r}")
        if self.spool not in SPOOL_MODES:
            raise ConfigurationError(f"spool must be one of off, spill, wal, got {self.spool!r}")
        if self.spool_fsync not in SPOOL_FSYNC:
            raise ConfigurationError(f"spool_fsync must be one of {SPOOL_FSYNC[0:]}, got {self.spool_fsync!r}")
        if self.mode not in MODES:
            raise ConfigurationError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.pii not in PII_POLICIES:
            raise ConfigurationError(f"pii must be one of {PII_POLICIES}, got {self.pii!r}")
        for name in ("queue_size", "batch_size", "max_attempts", "max_event_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be an integer >= 1, got {value!r}")
        if self.max_event_bytes > MAX_EVENT_BYTES_LIMIT:
            raise ConfigurationError(
                f"max_event_bytes must be at most {MAX_EVENT_BYTES_LIMIT} (32 MiB), got {self.max_event_bytes!r}"
            )
        for name, zero_ok in (("linger_seconds", True), ("max_age_seconds", False), ("exit_timeout_seconds", False)):
            value = getattr(self, name)
            if name == "linger_seconds" and value is None:
                continue  # adaptive
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
                or (value == 0 and not zero_ok)
            ):
                raise ConfigurationError(f"{name} must be a finite number of seconds {'>=' if zero_ok else '>'} 0")
        for name in ("collector_gzip", "disabled", "sdk_disabled", "handle_signals"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigurationError(f"{name} must be a bool, got {type(getattr(self, name)).__name__}")
        if not isinstance(self.collector_headers, Mapping) or not all(
            isinstance(k, str) and k.strip() and isinstance(v, str) for k, v in self.collector_headers.items()
        ):
            raise ConfigurationError("collector_headers must be a mapping of non-empty str names to str values")
        if self.nats_url:
            problem = _nats_url_problem(self.nats_url)
            if problem:
                raise ConfigurationError(problem)
            security = _nats_security_problem(self)
            if security:
                raise ConfigurationError(f"{security[0]}: {security[1]}")
        if self.collector_endpoint:
            problem = _collector_endpoint_problem(self.collector_endpoint)
            if problem:
                raise ConfigurationError(problem)

    def __repr__(self) -> str:
        """Like the dataclass repr, with the password, token, URL credentials and every header value masked."""
        shown: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("nats_password", "nats_token") and value:
                value = MASK
            elif f.name in ("nats_url", "collector_endpoint"):
                value = redact_url(value)
            elif f.name == "collector_headers":
                value = redact_headers(value)
            elif f.name == "spool" and not value:
                value = "spill (default)"  # spill when the spool directory is writable, else off
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    __str__ = __repr__

    @property
    def has_sink(self) -> bool:
        return bool(self.nats_url or self.collector_endpoint)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``OTEL_COMMERCE_*`` (and Hanzo's ``PUBSUB_URL`` / ``ANALYTICS_ENDPOINT``); overrides win.

        Invalid environment values never raise (see the module doc: a WARNING and the default, or an
        ERROR and that sink disabled). Invalid ``overrides`` raise :class:`ConfigurationError`.
        """
        env = os.environ if env is None else env
        nats_url, nats_var = _first(env, "OTEL_COMMERCE_NATS_URL", "PUBSUB_URL")
        endpoint, endpoint_var = _first(env, "OTEL_COMMERCE_COLLECTOR_ENDPOINT", "ANALYTICS_ENDPOINT")
        endpoint = endpoint.rstrip("/")
        headers: dict[str, str] = {}
        collector_error: tuple[str, str] | None = None
        if endpoint:
            problem = _collector_endpoint_problem(endpoint)
            if problem:
                collector_error = (endpoint_var, problem)
        try:
            headers = parse_headers(_first(env, "OTEL_COMMERCE_COLLECTOR_HEADERS")[0])
        except ConfigurationError as exc:
            name = "OTEL_COMMERCE_COLLECTOR_HEADERS"  # named once in the log line, not twice
            collector_error = collector_error or (name, str(exc).removeprefix(f"{name}: "))
        max_age = _ms(env, "OTEL_COMMERCE_MAX_AGE_MS", _DEFAULT_MAX_AGE_SECONDS, allow_zero=False)
        if max_age is None:
            max_age = _deprecated_seconds(
                env, "OTEL_COMMERCE_MAX_AGE_SECONDS", "OTEL_COMMERCE_MAX_AGE_MS", _DEFAULT_MAX_AGE_SECONDS
            )
        linger = _ms(env, "OTEL_COMMERCE_LINGER_MS", None, allow_zero=True)  # unset / invalid: adaptive
        values: dict[str, Any] = {
            "nats_url": nats_url,
            "collector_endpoint": "" if collector_error else endpoint,
            "mode": _enum(env, "OTEL_COMMERCE_MODE", MODES, "log"),
            "pii": _enum(env, "OTEL_COMMERCE_PII", PII_POLICIES, "hash"),
            "nats_token": _first(env, "OTEL_COMMERCE_NATS_TOKEN")[0],
            "nats_user": _first(env, "OTEL_COMMERCE_NATS_USER")[0],
            "nats_password": _first(env, "OTEL_COMMERCE_NATS_PASSWORD")[0],
            "nats_creds": _first(env, "OTEL_COMMERCE_NATS_CREDS")[0],
            "nats_tls_ca": _first(env, "OTEL_COMMERCE_NATS_TLS_CA")[0],
            "nats_tls_cert": _first(env, "OTEL_COMMERCE_NATS_TLS_CERT")[0],
            "nats_tls_key": _first(env, "OTEL_COMMERCE_NATS_TLS_KEY")[0],
            "collector_headers": headers,
            "collector_gzip": _bool(env, "OTEL_COMMERCE_COLLECTOR_GZIP", False),
            "queue_size": _int(env, "OTEL_COMMERCE_QUEUE_SIZE", _DEFAULT_QUEUE_SIZE),
            "batch_size": _int(env, "OTEL_COMMERCE_BATCH_SIZE", _DEFAULT_BATCH_SIZE),
            "linger_seconds": linger,
            "max_attempts": _int(env, "OTEL_COMMERCE_MAX_ATTEMPTS", _DEFAULT_MAX_ATTEMPTS),
            "max_age_seconds": _DEFAULT_MAX_AGE_SECONDS if max_age is None else max_age,
            "max_event_bytes": _int(
                env, "OTEL_COMMERCE_MAX_EVENT_BYTES", DEFAULT_MAX_EVENT_BYTES, maximum=MAX_EVENT_BYTES_LIMIT
            ),
            "log_body": _enum(env, "OTEL_COMMERCE_LOG_BODY", LOG_BODIES, "none"),
            "disabled": _bool(env, "OTEL_COMMERCE_DISABLED", False),
            "sdk_disabled": _bool(env, "OTEL_SDK_DISABLED", False),
            "spool": _enum(env, "OTEL_COMMERCE_SPOOL", SPOOL_MODES, ""),
            "spool_dir": _first(env, "OTEL_COMMERCE_SPOOL_DIR")[0],
            "spool_fsync": _enum(env, "OTEL_COMMERCE_SPOOL_FSYNC", SPOOL_FSYNC, "none"),
            "spool_fsync_ms": 1000 * (_ms(env, "OTEL_COMMERCE_SPOOL_FSYNC_MS", 0.1, allow_zero=False) or 0.1),
            "on_commit": _bool(env, "OTEL_COMMERCE_ON_COMMIT", False),
            "exit_timeout_seconds": _ms(
                env, "OTEL_COMMERCE_EXIT_TIMEOUT_MS", _DEFAULT_EXIT_TIMEOUT_SECONDS, allow_zero=False
            )
            or _DEFAULT_EXIT_TIMEOUT_SECONDS,
            "handle_signals": _bool(env, "OTEL_COMMERCE_SIGNALS", True),
        }
        if nats_url:
            problem = _nats_url_problem(nats_url)
            nats_error = (nats_var, problem) if problem else None
            if nats_error is None:  # checked on settings without the URL (whose check would raise)
                nats_error = _nats_security_problem(cls(**{**values, "collector_endpoint": "", "nats_url": ""}))
            if nats_error is not None:
                logger.error("otel-commerce: %s: %s; the JetStream sink is disabled", nats_error[0], nats_error[1])
                values["nats_url"] = ""
        if collector_error is not None and endpoint:
            logger.error(
                "otel-commerce: %s: %s; the collector sink is disabled", collector_error[0], collector_error[1]
            )
        settings = cls(**values)
        given = {k: v for k, v in overrides.items() if v is not None}
        if not given:
            return settings
        unknown = sorted(set(given) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigurationError(f"unknown setting(s): {', '.join(unknown)}")
        return replace(settings, **given)

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS context the NATS TLS settings describe (None without TLS settings)."""
        if not (self.nats_tls_ca or self.nats_tls_cert):
            return None
        ctx = ssl.create_default_context(cafile=self.nats_tls_ca or None)
        if self.nats_tls_cert:
            ctx.load_cert_chain(self.nats_tls_cert, self.nats_tls_key or None)
        return ctx

    def nats_connect_options(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect`` (servers, auth, TLS) — reconnection is ours."""
        opts: dict[str, Any] = {"servers": [u.strip() for u in self.nats_url.split(",") if u.strip()]}
        if self.nats_token:
            opts["token"] = self.nats_token
        if self.nats_user:
            opts["user"] = self.nats_user
            opts["password"] = self.nats_password
        if self.nats_creds:
            opts["user_credentials"] = self.nats_creds
        ctx = self.tls_context()
        if ctx is not None:
            opts["tls"] = ctx
        return opts


def _deprecated_seconds(env: Mapping[str, str], name: str, new_name: str, default: float) -> float | None:
    """A deprecated seconds-valued variable: WARNING pointing at ``new_name``; invalid → WARNING, default."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    logger.warning(
        "otel-commerce: %s is deprecated: set %s (milliseconds, like every duration in the environment)",
        name,
        new_name,
    )
    try:
        value = float(raw)
    except ValueError:
        return float(_fallback(name, raw, "not a number of seconds", default))
    if not math.isfinite(value) or value <= 0:
        return float(_fallback(name, raw, "must be a finite number of seconds > 0", default))
    return value
