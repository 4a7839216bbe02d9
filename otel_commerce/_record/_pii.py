"""PII policy for the OTel path (DESIGN.md "Guarantees").

Keys are classified by their **tokens** (camelCase, kebab-case, snake_case and dots split), not by
substring: ``email``/``emails``/``e_mail``/``em``; ``phone``/``phones``/``mobile``/``msisdn``/
``telephone``/``tel``/``ph`` (a trailing ``number``/``address``/``addr``/``list`` is skipped:
``phone_number``); ``ip``/``ips``/``ipv4``/``ipv6``/``remote_addr``/``x-forwarded-for``/
``forwarded``/``real_ip``; ``user_agent``/``userAgent``/``ua``. The *last* meaningful token decides, so
``email_verified``, ``phone_count``, ``shipping``, ``zip``, ``tip`` and ``recipient`` are not PII.

``hash`` (default): under a PII key every ``str`` (and every ``int`` under phone / IP keys) is
replaced by its SHA-256 hex digest — e-mail and phone normalised the way Meta CAPI expects — inside
any ``Mapping`` (``MappingProxyType`` too), list or tuple, element-wise; ``bool``, ``None`` and floats
are left alone. ``drop``: PII keys are removed. ``keep``: unchanged. E-mail- or IP-shaped values
under id keys (``user_id``, ``session_id``, ``id``, any ``*_id``) of ``data`` are treated as PII too.
Text keys (``error_message``, ``error``, ``message``, ``reason``, ``exception.message``) keep their
text with e-mail, phone and IP substrings replaced by ``[email]``, ``[phone]``, ``[ip]``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
from collections.abc import Mapping
from typing import Any

from .._errors import EventValidationError
from .._model import capi_hash
from .._model._catalog import RESERVED_DATA_KEYS
from .._model._envelope import (
    INT64_MAX,
    INT64_MIN,
    MAX_DEPTH,
    _checked_key,
    _Freeze,
    _path,
    _Refused,
    freeze_data,
)
from .._model._scrub import scrub_text

__all__ = [
    "apply_pii",
    "apply_pii_frozen",
    "apply_pii_top",
    "freeze_with_pii",
    "is_pii_shaped",
    "mask_id",
    "pii_kind",
    "scrub_text",
    "split_key",
]

_EM = frozenset({"email", "emails", "em", "mail", "mails"})
_PH = frozenset({"phone", "phones", "mobile", "mobiles", "msisdn", "telephone", "tel", "ph", "cellphone", "cell"})
_IP = frozenset({"ip", "ips", "ipv", "ipv4", "ipv6", "ipaddr", "ipaddress"})  # "ipv": ipv4 splits as ipv, 4
_UA = frozenset({"useragent", "ua"})
_SKIP_TAIL = frozenset({"number", "numbers", "num", "no", "address", "addresses", "addr", "list", "raw", "value"})
_TEXT = frozenset({"message", "error", "reason"})
_TOKEN_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")

_KIND_CACHE: dict[str, str | None] = {}
_KIND_CACHE_MAX = 4096


def split_key(key: str) -> list[str]:
    """``"customerEmailAddress"`` → ``["customer", "email", "address"]`` (also ``-``, ``_``, ``.``)."""
    return [t.lower() for t in _TOKEN_RE.findall(key)]


def pii_kind(key: str) -> str | None:
    """``"em"``, ``"ph"``, ``"ip"``, ``"ua"``, ``"id"`` (an id key), ``"text"`` or None (memoised)."""
    if not isinstance(key, str):
        return None  # not ours to judge: the JSON check refuses non-string keys with a clear error
    try:
        return _KIND_CACHE[key]
    except KeyError:
        kind = _classify(split_key(key))
        if len(_KIND_CACHE) < _KIND_CACHE_MAX:
            _KIND_CACHE[key] = kind
        return kind


def _strip_tail(tokens: list[str]) -> list[str]:
    """Drop trailing tokens that do not name the kind: ``number``/``address``..., digits (``email1``,
    ``email_2``) and a version suffix (``ip_address_v4``: ``v``, ``4``)."""
    while len(tokens) > 1:
        last = tokens[-1]
        if last in _SKIP_TAIL:
            tokens = tokens[:-1]
        elif last.isdigit():
            tokens = tokens[:-2] if tokens[-2] == "v" and len(tokens) > 2 else tokens[:-1]
        else:
            break
    return tokens


def _classify(tokens: list[str]) -> str | None:
    if not tokens:
        return None
    if tokens[-2:] == ["user", "agent"] or tokens[-1] in _UA:
        return "ua"
    if tokens[-2:] in (["forwarded", "for"], ["remote", "addr"], ["remote", "address"]) or tokens[-1] == "forwarded":
        return "ip"
    tokens = _strip_tail(tokens)
    last = tokens[-1]
    if last in _EM or tokens[-2:] == ["e", "mail"]:
        return "em"
    if last in _PH:
        return "ph"
    if last in _IP:
        return "ip"
    if last == "id":
        return "id"
    if last in _TEXT:
        return "text"
    return None


# --------------------------------------------------------------------------- value shapes
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_IP_CHARS = re.compile(r"[0-9A-Fa-f:.]+")


def _is_ip(value: str) -> bool:
    v = value.strip()
    if not (v.count(".") == 3 or v.count(":") >= 2) or not _IP_CHARS.fullmatch(v):
        return False
    try:
        ipaddress.ip_address(v)
    except ValueError:
        return False
    return True


_PHONE_RE = re.compile(r"\+\d[\d\s().-]{5,24}\d")


def _is_phone(value: str) -> bool:
    """An international number: ``+`` then 7-15 digits with spaces, dots, dashes or parentheses."""
    v = value.strip()
    return _PHONE_RE.fullmatch(v) is not None and 7 <= sum(c.isdigit() for c in v) <= 15


def is_pii_shaped(value: str) -> str | None:
    """``"em"`` for an e-mail-shaped string, ``"ip"`` for an IP address, ``"ph"`` for an international
    phone number (``+`` and 7-15 digits), else None."""
    if "@" in value and _EMAIL_RE.fullmatch(value.strip()):
        return "em"
    if "+" in value and _is_phone(value):
        return "ph"
    if _is_ip(value):
        return "ip"
    return None


def _digest(kind: str, value: str) -> str:
    if kind in ("em", "ph"):
        return capi_hash(kind, value)
    return hashlib.sha256(value.strip().encode("utf-8")).hexdigest()


def mask_id(value: str) -> str:
    """An envelope id for OTel signals: its digest when e-mail-, phone- or IP-shaped, else unchanged."""
    if not value or not ("@" in value or "+" in value or "." in value or ":" in value):
        return value  # none of the shapes is possible without one of these characters
    kind = is_pii_shaped(value)
    return value if kind is None else _digest(kind, value)


# --------------------------------------------------------------------------- the policy
def _hash_all(kind: str, value: Any) -> Any:
    """Under a PII key: digests for str (and int for phone / IP), element-wise in containers."""
    if isinstance(value, str):
        return _digest(kind, value) if value else value
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        return _digest(kind, str(value)) if kind in ("ph", "ip") else value
    if isinstance(value, Mapping):
        return {k: _hash_all(kind, v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_hash_all(kind, v) for v in value]
    return value


def apply_pii(data: Mapping[str, Any], policy: str) -> dict[str, Any]:
    """Return ``data`` with the policy applied (a new dict when anything changed; any Mapping → dict)."""
    if policy == "keep":
        return data if isinstance(data, dict) else dict(data)
    out: dict[str, Any] | None = None if isinstance(data, dict) else dict(data)
    for key, value in data.items():
        kind = pii_kind(key)
        new: Any = value
        if kind == "text":
            new = scrub_text(value) if isinstance(value, str) else _apply_nested(value, policy)
        elif kind == "id":
            if isinstance(value, str) and is_pii_shaped(value):
                new = _DROP if policy == "drop" else mask_id(value)
            else:
                new = _apply_nested(value, policy)
        elif kind is not None:
            new = _DROP if policy == "drop" else _hash_all(kind, value)
        else:
            new = _apply_nested(value, policy)
        if new is not value:
            if out is None:
                out = dict(data)
            if new is _DROP:
                del out[key]
            else:
                out[key] = new
    return data if out is None else out  # type: ignore[return-value]


_DROP: Any = object()


def apply_pii_frozen(data: dict[str, Any], policy: str) -> dict[str, Any]:
    """:func:`apply_pii` on data the caller owns (a frozen copy: only dicts, lists and JSON scalars):
    the same result, written into ``data`` and its nested containers instead of copies. Returns ``data``."""
    if policy != "keep":
        _pii_in_place(data, policy)
    return data


def _pii_in_place(data: dict[str, Any], policy: str) -> None:
    drop: list[str] | None = None
    kinds = _KIND_CACHE
    for key, value in data.items():
        kind = kinds[key] if key in kinds else pii_kind(key)
        t = type(value)
        if kind is None:
            if t is dict:
                _pii_in_place(value, policy)
            elif t is list:
                _pii_list(value, policy)
            continue
        if kind == "id":
            if t is str:
                if ("@" in value or "." in value or ":" in value or "+" in value) and is_pii_shaped(value):
                    if policy == "drop":
                        drop = [*(drop or ()), key]
                    else:
                        data[key] = mask_id(value)
                continue
        elif kind == "text":
            if t is str:
                data[key] = scrub_text(value)
                continue
        else:
            if policy == "drop":
                drop = [*(drop or ()), key]
            else:
                data[key] = _hash_all(kind, value)
            continue
        if t is dict:  # an id / text key holding a container: the policy applies inside it
            _pii_in_place(value, policy)
        elif t is list:
            _pii_list(value, policy)
    if drop:
        for key in drop:
            del data[key]


def _pii_list(values: list[Any], policy: str) -> None:
    for v in values:
        t = type(v)
        if t is dict:
            _pii_in_place(v, policy)
        elif t is list:
            _pii_list(v, policy)


def _apply_nested(value: Any, policy: str) -> Any:
    """The policy inside nested mappings and lists (``{"customers": [{"email": ...}]}``)."""
    if isinstance(value, Mapping):
        return apply_pii(value, policy)
    if isinstance(value, (list, tuple)):
        items = [_apply_nested(v, policy) for v in value]
        if any(a is not b for a, b in zip(items, value, strict=True)):
            return items
    return value


# --------------------------------------------------------------------------- one pass: freeze + policy
_HASHED = frozenset({"em", "ph", "ip", "ua"})  # kinds whose whole value is digested (or dropped)
#: plain ``str`` keys the walk has checked (encodable) and classified: key → PII kind (bounded)
_GOOD_KEYS: dict[str, str | None] = {}
_MISS: Any = object()
#: the keys of :data:`_GOOD_KEYS` met at the top level of ``data``, except the reserved ones
#: (``RESERVED_DATA_KEYS``): a reserved key always takes :meth:`_FreezePii.top_key`, which flags it (bounded)
_TOP_KEYS: dict[str, str | None] = {}


class _FreezePii(_Freeze):
    """:class:`_Freeze` (validate, convert, copy: same checks, same size estimate, same error paths) that
    applies the PII policy to every nested mapping as it copies it — what :func:`apply_pii_frozen` does
    in a second walk. The top-level keys the policy touches are only *listed* (:meth:`top_mapping`):
    ``record_event`` checks the catalog fields and makes the entity id from the raw values first (as
    before), then :func:`apply_pii_top` applies them."""

    __slots__ = ("drop", "reserved", "top")

    def __init__(self, drop: bool) -> None:
        self.size = 0  # what _Walk.__init__ does, without the super() call (one per recorded event)
        self.drop = drop
        #: after :meth:`top_mapping`: the top-level keys the policy still has to treat, or None
        self.top: list[str] | None = None
        #: after :meth:`top_mapping`: a top-level key met was a reserved one (``k in RESERVED_DATA_KEYS``)
        self.reserved = False

    def top_key(self, k: Any) -> tuple[str, str | None]:
        """A top-level key not in :data:`_TOP_KEYS` (or not a plain str): :func:`_new_key`'s checks, and
        :attr:`reserved` set when it is a reserved key (as given, or made a plain str)."""
        given = k
        k, kind = _new_key(k)
        if k in RESERVED_DATA_KEYS or (given is not k and given in RESERVED_DATA_KEYS):
            self.reserved = True
        elif len(_TOP_KEYS) < _KIND_CACHE_MAX:
            _TOP_KEYS[k] = kind
        return k, kind

    def other(self, k: str, v: Any, kind: str | None, depth: int) -> Any:
        """A value of a mapping that is not a plain ASCII str, finite float or int64 int: checked,
        converted and frozen (a value digested as a whole is frozen without the policy inside it)."""
        try:
            if kind in _HASHED:
                plain = _Freeze()
                v = plain.value(v, depth)
                self.size += plain.size
                return v
            if type(v) is list and depth < MAX_DEPTH:  # what value() would do, one call less
                return self.sequence(v, depth + 1)
            return self.value(v, depth)
        except _Refused as r:
            r.path.append(f".{k}")
            raise

    def mapping(self, m: Mapping[Any, Any], depth: int) -> dict[str, Any]:
        """A nested mapping, frozen with the policy applied to its keys."""
        out: dict[str, Any] = {}
        size = 0
        good = _GOOD_KEYS
        for k, v in m.items():
            # a plain str key already checked and classified: its kind, without the checks
            try:
                kind = good[k]
            except Exception:  # KeyError; or an unhashable / odd key of a custom Mapping: the checks decide
                k, kind = _new_key(k)
            else:
                if type(k) is not str:  # a str subclass equal to a cached key: made a plain str
                    k, kind = _new_key(k)
            t = type(v)
            if t is str:
                if v.isascii():
                    size += len(k) + len(v) + 7
                else:
                    size += len(k) + 4
                    v = self.other(k, v, kind, depth)
                    t = type(v)
            elif t is float and v - v == 0.0:  # finite (inf - inf and nan - nan are nan)
                size += len(k) + 29
            elif t is int and INT64_MIN <= v <= INT64_MAX:
                size += len(k) + 25
            else:
                size += len(k) + 4
                v = self.other(k, v, kind, depth)
                t = type(v)
            if kind is None:
                out[k] = v
            elif kind == "id":
                # an identifier-like string (letters, digits, _) has none of the shapes' characters
                if (
                    t is str
                    and not v.isidentifier()
                    and ("@" in v or "." in v or ":" in v or "+" in v)
                    and is_pii_shaped(v)
                ):
                    if self.drop:
                        continue
                    v = mask_id(v)
                out[k] = v
            elif kind == "text":
                out[k] = scrub_text(v) if t is str else v
            elif not self.drop:
                out[k] = _hash_all(kind, v)
        self.size += size
        return out

    def top_mapping(self, m: Mapping[Any, Any]) -> dict[str, Any]:
        """The top-level mapping (depth 1), frozen. The policy's top-level keys wait for the catalog checks
        and the entity id (which read the raw values): they are listed in :attr:`top` (once: a multi-mapping
        may repeat a key; None when there are none) for :func:`apply_pii_top`. Not listed: an id key holding a str without any of the shapes'
        characters (the checks never change such a value: the catalog's id-named fields are text fields,
        so the policy leaves it); and, in a dict, a text or digested key holding a str (treated here:
        the catalog's e-mail and reason fields are text fields, which any str passes, and no id
        template names such a key)."""
        out: dict[str, Any] = {}
        top: list[str] | None = None
        size = 0
        good = _TOP_KEYS  # (never a reserved key: those are flagged by top_key)
        plain = type(m) is dict
        for k, v in m.items():
            try:
                kind = good[k]
            except Exception:  # KeyError; or an unhashable / odd key of a custom Mapping: the checks decide
                k, kind = self.top_key(k)
            else:
                if type(k) is not str:
                    k, kind = self.top_key(k)
            t = type(v)
            if t is str:
                if v.isascii():
                    size += len(k) + len(v) + 7
                else:
                    size += len(k) + 4
                    v = self.other(k, v, kind, 1)
                    t = type(v)
            elif t is float and v - v == 0.0:  # finite (inf - inf and nan - nan are nan)
                size += len(k) + 29
            elif t is int and INT64_MIN <= v <= INT64_MAX:
                size += len(k) + 25
            elif t is list and kind is None:  # what other() would do (items), one call less
                size += len(k) + 4
                try:
                    v = self.sequence(v, 2)
                except _Refused as r:
                    r.path.append(f".{k}")
                    raise
            else:
                size += len(k) + 4
                v = self.other(k, v, kind, 1)
                t = type(v)
            if kind is None or (
                kind == "id" and t is str and (v.isidentifier() or not ("@" in v or "." in v or ":" in v or "+" in v))
            ):
                out[k] = v
                continue
            if t is str and kind != "id" and plain and k not in out:
                # a text or digested key holding a str: the checks after the walk read it only as "a str"
                # and the entity id never names such a key, so the policy applies now (a dict has each
                # key once; a multi-mapping's repeated key waits for apply_pii_top, as ids do — and so does
                # a dict's key met again: two str-subclass keys with their own __hash__ / __eq__ that are
                # one plain key, the first one listed, must not be digested twice)
                if kind == "text":
                    out[k] = scrub_text(v)
                elif self.drop:
                    pass
                elif kind == "em" and 0 < len(v) < 64:  # capi_hash("em", v)'s common case, inline
                    v = v.strip().lower()
                    out[k] = _sha256(v.encode()).hexdigest() if v else ""
                else:
                    out[k] = (capi_hash(kind, v) if kind == "em" or kind == "ph" else _digest(kind, v)) if v else v
                continue
            out[k] = v
            if t is str or kind in _HASHED:
                if top is None:
                    top = [k]
                elif k not in top:
                    top.append(k)
        self.size += size
        self.top = top
        return out

    def sequence(self, seq: list[Any] | tuple[Any, ...], depth: int) -> list[Any]:
        out: list[Any] = []
        try:  # (no bound methods kept in locals: each would be one more GC-tracked object per list)
            if depth < MAX_DEPTH:
                inner = depth + 1
                for v in seq:
                    # a dict: what value() would do, one call less
                    out.append(self.mapping(v, inner) if type(v) is dict else self.value(v, depth))
            else:
                for v in seq:
                    out.append(self.value(v, depth))
        except _Refused as r:
            r.path.append(f"[{len(out)}]")  # the values before the refused one are in out
            raise
        self.size += len(seq)
        return out


_isfinite = math.isfinite
_sha256 = hashlib.sha256


def _new_key(k: Any) -> tuple[str, str | None]:
    """A key not in the checked-keys cache (or not a plain str): checked (a str, no lone surrogate),
    made a plain str, classified, and cached when there is room."""
    k = _checked_key(k)
    kind = pii_kind(k)
    if len(_GOOD_KEYS) < _KIND_CACHE_MAX:
        _GOOD_KEYS[k] = kind
    return k, kind


def freeze_with_pii(
    value: Mapping[str, Any], policy: str, *, max_bytes: int | None, extra_bytes: int = 0
) -> tuple[dict[str, Any], list[str]]:
    """:func:`freeze_data` (same checks, errors and size bound; path ``data``) with the PII ``policy``
    (``hash`` / ``drop``) applied to nested containers in the same pass. Returns the frozen copy and the
    top-level keys the policy still has to treat (:func:`apply_pii_top`, after the catalog checks):
    ``apply_pii_top(*freeze_with_pii(v, p))`` = ``apply_pii_frozen(freeze_data(v), p)``."""
    walk = _FreezePii(policy == "drop")
    try:
        out = walk.top_mapping(value)
    except _Refused as r:
        raise EventValidationError(f"{_path('data', r.path)} {r.reason}") from None
    if max_bytes is not None and (walk.size + extra_bytes) * 6 > max_bytes:
        # the exact size is measured on the copy without digests, as freeze_data does (raises if too large)
        freeze_data(value, max_bytes=max_bytes, extra_bytes=extra_bytes)
    return out, walk.top or []


def apply_pii_top(data: dict[str, Any], keys: list[str], policy: str) -> dict[str, Any]:
    """The PII ``policy`` on the top-level ``keys`` of ``data`` (listed by :func:`freeze_with_pii`), in place."""
    drop = policy == "drop"
    good = _GOOD_KEYS
    for k in keys:
        v = data[k]
        kind = good.get(k) or pii_kind(k)  # listed keys have a kind (cached by the walk, when there was room)
        if kind == "id":
            if type(v) is str and ("@" in v or "." in v or ":" in v or "+" in v) and is_pii_shaped(v):
                if drop:
                    del data[k]
                else:
                    data[k] = mask_id(v)
        elif kind == "text":
            if type(v) is str:
                data[k] = scrub_text(v)
        elif kind is not None:
            if drop:
                del data[k]
            elif type(v) is str:  # what _hash_all does with a str, one or two calls less
                data[k] = (capi_hash(kind, v) if kind == "em" or kind == "ph" else _digest(kind, v)) if v else v
            else:
                data[k] = _hash_all(kind, v)
    return data
