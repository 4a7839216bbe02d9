"""Free text without PII: e-mail, IP and phone-number substrings replaced by ``[email]``, ``[ip]``, ``[phone]``.

Used wherever text we did not write reaches an OTel signal (exception messages and stack traces copied
by ``on_error``, the decorator's span and the consumer helper's span).
"""

from __future__ import annotations

import ipaddress
import re

__all__ = ["scrub_text"]

_TEXT_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_TEXT_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
_TEXT_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_TEXT_PHONE = re.compile(r"(?<![\w+])\+?\(?\d[\d\s().-]{5,20}\d(?!\w)")


def _ip_sub(m: re.Match[str]) -> str:
    try:
        ipaddress.ip_address(m.group(0))
    except ValueError:
        return m.group(0)
    return "[ip]"


def _phone_sub(m: re.Match[str]) -> str:
    text = m.group(0)
    digits = sum(c.isdigit() for c in text)
    return "[phone]" if 7 <= digits <= 15 else text


def scrub_text(text: str) -> str:
    """Replace e-mail, IP and phone-number substrings by ``[email]``, ``[ip]``, ``[phone]``."""
    if "@" in text:
        text = _TEXT_EMAIL.sub("[email]", text)
    if "." in text or ":" in text:
        text = _TEXT_IPV4.sub(_ip_sub, text)
        text = _TEXT_IPV6.sub(_ip_sub, text)
    return _TEXT_PHONE.sub(_phone_sub, text)
