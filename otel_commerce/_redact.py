"""Redaction: the one helper every message that can carry a URL, a header or a token goes through.

* URLs: the user-info part (``nats://user:pass@host`` / ``nats://token@host``) becomes ``***@`` and
  the values of secret-looking query parameters (``token``, ``password``, ``key``, ``secret``, ``auth``…)
  become ``***``. The scheme, host, port and path stay: they are what one needs to debug.
* Headers: the values of ``Authorization``, ``Proxy-Authorization``, ``Cookie`` and any header whose
  name mentions a key, token, secret or password become ``***`` (OTel exporters do the same).
* Free text: every URL in it is redacted as above, ``Bearer …`` / ``Basic …`` credentials and
  ``Authorization: …`` / ``token=…`` pairs are masked, and any registered secret value
  (:func:`register_secret`: the configured NATS password/token, collector headers) is replaced.

File paths (``.creds``, TLS keys) are not secrets and are kept.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["MASK", "redact", "redact_headers", "redact_url", "register_secret", "secret_header"]

MASK = "***"

_SECRET_NAME = re.compile(r"(?i)(auth|token|secret|passw|pwd|api[-_]?key|apikey|signature|cookie|session|^key$)")
_URL_RE = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>,;)\]]+")
_SCHEME_CRED = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=:-]{3,}")
_PAIR = re.compile(
    r"(?i)\b([\w-]*(?:authorization|token|secret|password|passwd|api[-_]?key|apikey)[\w-]*)(\s*[=:]\s*)"
    r"(?:'[^']*'|\"[^\"]*\"|(?:(?:bearer|basic)\s+)?[^\s,;&'\"]+)"
)
_MIN_SECRET_LEN = 4

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(*values: str | None) -> None:
    """Remember configured secret values; :func:`redact` replaces them wherever they appear."""
    with _lock:
        for value in values:
            if value and len(value) >= _MIN_SECRET_LEN:
                _secrets.add(value)


def secret_header(name: str) -> bool:
    """True for headers whose value is a credential (``Authorization``, ``X-API-Key``, ``Cookie``...)."""
    return bool(_SECRET_NAME.search(name))


def redact_url(url: str) -> str:
    """``url`` without credentials: user-info → ``***@``, secret query values → ``***``.

    Accepts a comma-separated server list (``nats://a:p@h1,nats://h2``) too.
    """
    if "," in url and "://" in url.split(",", 1)[1]:
        return ",".join(redact_url(part) for part in url.split(","))
    try:
        parts = urlsplit(url)
    except ValueError:
        return _mask_known(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(secret_header(k) for k, _ in pairs):
            query = urlencode([(k, MASK if secret_header(k) else v) for k, v in pairs], safe="*")
    return _mask_known(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))


def redact_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """A copy of ``headers`` with every value replaced by ``***`` (names only): a header whose name looks
    harmless may carry a key (Honeycomb's ``x-honeycomb-team``), so no collector header value is shown."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    return dict.fromkeys((k for k, _ in items), MASK)


def redact(text: object) -> str:
    """``str(text)`` with every URL redacted and credentials (Bearer, ``token=…``, registered secrets) masked."""
    out = str(text)
    if "://" in out:
        out = _URL_RE.sub(lambda m: redact_url(m.group(0)), out)
    out = _PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", out)
    out = _SCHEME_CRED.sub(lambda m: f"{m.group(1)} {MASK}", out)
    return _mask_known(out)


def _mask_known(text: str) -> str:
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text
