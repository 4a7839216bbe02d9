"""SHA-256 hashing and Meta Conversions API normalisers (facts §8).

``sha256_hex`` is the Go package's ``SHA256Hex``: trim, lowercase, hash, ``""`` for empty input.
``capi_hash(key, value)`` normalises a CAPI user-data field the way Meta documents, then hashes it;
fields Meta says never to hash (client_ip_address, client_user_agent, fbc, fbp) pass through.
A value that already is a SHA-256 hex digest (after trimming and case-folding: Meta wants lower-case
hex) is kept, lower-cased, so hashing twice is harmless.

Phones (``ph``): with the ``phone`` extra (``phonenumbers``), a number is parsed and normalised to
E.164 digits (``+1 (555) 123-4567`` → ``15551234567``); a number without a country code is read in the
region ``OTEL_COMMERCE_PHONE_REGION`` (e.g. ``US``: ``(555) 123-4567`` → ``15551234567``). Results are
cached (LRU, 4096 numbers; parsing costs ~11 µs). Without ``phonenumbers`` (or when a number does not
parse) the digits are kept with leading zeros stripped (``0044 20…`` → ``4420…``), which Meta matches
only when the number carried its country code.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import string
from collections.abc import Callable
from typing import Any

__all__ = [
    "CAPI_NORMALIZERS",
    "capi_hash",
    "is_sha256_hex",
    "normalize_capi",
    "sha256_hex",
]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_NON_DIGITS = re.compile(r"\D+")
_PUNCT = str.maketrans("", "", string.punctuation)


def is_sha256_hex(value: str) -> bool:
    """True when ``value`` already is a SHA-256 hex digest (after trimming and case-folding)."""
    return len(value) >= 64 and bool(_HEX64.match(value.strip().casefold()))


def sha256_hex(s: str) -> str:
    """Trim, lowercase and SHA-256 ``s``; ``""`` for empty input (Go ``SHA256Hex``)."""
    s = s.strip().lower()
    if not s:
        return ""
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


def _email(v: str) -> str:
    return v.strip().lower()


logger = logging.getLogger("otel_commerce")
_phonenumbers: Any = None
_phonenumbers_checked = False


def _phone_lib() -> Any:
    global _phonenumbers, _phonenumbers_checked
    if not _phonenumbers_checked:
        _phonenumbers_checked = True
        try:
            import phonenumbers

            _phonenumbers = phonenumbers
        except ImportError:
            if os.environ.get("OTEL_COMMERCE_PHONE_REGION"):
                from .._errors import install_hint

                logger.warning(
                    "otel-commerce: OTEL_COMMERCE_PHONE_REGION is set but phonenumbers is not installed "
                    "(%s): phones are hashed as digits only",
                    install_hint("phone"),
                )
    return _phonenumbers


@functools.lru_cache(maxsize=4096)
def _phone_e164(v: str, region: str | None) -> str:
    lib = _phone_lib()
    if lib is not None:
        try:
            number = lib.parse(v, region)
        except lib.NumberParseException:
            number = None
        if number is not None and lib.is_possible_number(number):
            return str(lib.format_number(number, lib.PhoneNumberFormat.E164)).lstrip("+")
    return _NON_DIGITS.sub("", v).lstrip("0")


def _phone(v: str) -> str:
    region = os.environ.get("OTEL_COMMERCE_PHONE_REGION") or None
    return _phone_e164(v.strip(), region.upper() if region else None)


def _name(v: str) -> str:
    return v.strip().lower().translate(_PUNCT).strip()


def _compact(v: str) -> str:
    return _name(v).replace(" ", "")


def _zip(v: str) -> str:
    return v.strip().lower().replace(" ", "").replace("-", "")


def _country(v: str) -> str:
    return _compact(v)[:2]


def _trim(v: str) -> str:
    return v.strip()


#: Normaliser per CAPI user-data key. Keys missing here are never hashed.
CAPI_NORMALIZERS: dict[str, Callable[[str], str]] = {
    "em": _email,
    "ph": _phone,
    "fn": _name,
    "ln": _name,
    "ct": _compact,
    "st": _compact,
    "zp": _zip,
    "country": _country,
    "ge": _compact,
    "db": _zip,
    "external_id": _trim,
}


def normalize_capi(key: str, value: str) -> str:
    """Normalise ``value`` for CAPI field ``key`` (unknown keys are returned trimmed)."""
    fn = CAPI_NORMALIZERS.get(key, _trim)
    return fn(value)


def capi_hash(key: str, value: str) -> str:
    """Normalise then SHA-256 a CAPI user-data field; ``""`` for empty input.

    Fields that Meta says must not be hashed (ip, user agent, fbc, fbp) are returned unchanged.
    """
    if not value:
        return ""
    if key == "em" and len(value) < 64:  # the common case, inlined: too short to be a digest already
        normalised = value.strip().lower()
        return hashlib.sha256(normalised.encode("utf-8")).hexdigest() if normalised else ""
    if key not in CAPI_NORMALIZERS:
        return value
    if is_sha256_hex(value):
        return value.strip().casefold()
    normalised = normalize_capi(key, value)
    if not normalised:
        return ""
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()
