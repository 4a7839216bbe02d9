"""The one-pass record path gives what the separate steps gave: ``freeze_data`` = ``copy_json`` then
``clean_data`` (same value, same errors, nothing shared), ``apply_pii_frozen`` = ``apply_pii``."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_commerce import EventValidationError
from otel_commerce._model._envelope import clean_data, freeze_data
from otel_commerce._model._frozen import copy_json
from otel_commerce._record._pii import apply_pii, apply_pii_frozen, apply_pii_top, freeze_with_pii

KEYS = st.sampled_from(
    ["email", "e_mail", "phone_number", "ip", "user_agent", "order_id", "user_id", "message", "name",
     "price", "quantity", "items", "customerEmailAddress", "remote_addr", "note"]
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["a@b.co", "10.0.0.1", "::1", "+1 415 555 0100", "x.y", "r:s"]),
)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner),
                            st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=12,
)
DATA = st.dictionaries(KEYS, JSONISH, max_size=6)


def _ids(value: Any, out: set[int]) -> set[int]:
    if isinstance(value, (dict, list)):
        out.add(id(value))
        for v in value.values() if isinstance(value, dict) else value:
            _ids(v, out)
    return out


def _outcome(fn: Any, data: dict[str, Any]) -> Any:
    try:
        return ("ok", fn(data))
    except EventValidationError as exc:
        return ("error", str(exc))


@settings(max_examples=150, deadline=None)
@given(DATA)
def test_freeze_data_is_copy_then_clean_in_one_pass(data: dict[str, Any]) -> None:
    before = copy.deepcopy(data)
    expected = _outcome(lambda d: clean_data(copy_json(d)), data)
    got = _outcome(freeze_data, data)
    assert got == expected
    assert repr(data) == repr(before)  # the input is never changed
    if got[0] == "ok":
        assert not (_ids(got[1], set()) & _ids(data, set()))  # frozen: no dict or list shared


@pytest.mark.parametrize("policy", ["hash", "drop", "keep"])
@settings(max_examples=80, deadline=None)
@given(data=DATA)
def test_pii_in_place_on_the_frozen_copy_equals_apply_pii(policy: str, data: dict[str, Any]) -> None:
    try:
        frozen = freeze_data(data, max_bytes=None)
    except EventValidationError:
        return
    expected = apply_pii(copy.deepcopy(frozen), policy)
    assert apply_pii_frozen(frozen, policy) == expected


@pytest.mark.parametrize("policy", ["hash", "drop"])
@settings(max_examples=150, deadline=None)
@given(data=DATA)
def test_freeze_with_pii_equals_freeze_then_pii(policy: str, data: dict[str, Any]) -> None:
    """record_event's one pass (nested policy while freezing, top-level keys after the catalog checks)
    gives what freeze_data then apply_pii_frozen gave: same value, same errors, nothing shared."""
    before = copy.deepcopy(data)
    expected = _outcome(lambda d: apply_pii_frozen(freeze_data(d, max_bytes=None), policy), data)
    got = _outcome(lambda d: apply_pii_top(*freeze_with_pii(d, policy, max_bytes=None), policy), data)
    assert got == expected
    assert repr(data) == repr(before)
    if got[0] == "ok":
        assert not (_ids(got[1], set()) & _ids(data, set()))


@pytest.mark.parametrize("policy", ["hash", "drop"])
def test_freeze_with_pii_size_bound_is_measured_without_digests(policy: str) -> None:
    # near the bound the exact size is that of the copy without digests (as freeze_data measures it)
    data = {"email": "a@b.co", "note": "x" * 400}
    for bound in (300, 420, 2000):
        expected = _outcome(lambda d, b=bound: apply_pii_frozen(freeze_data(d, max_bytes=b), policy), data)
        got = _outcome(lambda d, b=bound: apply_pii_top(*freeze_with_pii(d, policy, max_bytes=b), policy), data)
        assert got == expected


class _Key(str):
    pass


def _nest(depth: int, kind: str) -> Any:
    value: Any = {"email": "a@b.co", "n": [1]}
    for i in range(depth):
        use_list = kind == "list" or (kind == "mixed" and i % 2 == 0)
        value = [value] if use_list else {"user_id": "x@y.co", "v": value}
    return value


@pytest.mark.parametrize("policy", ["hash", "drop"])
@pytest.mark.parametrize(
    "data",
    [
        {1: "x"},
        {"email": "a@b.co", _Key("email"): "c@d.co"},
        {_Key("user_id"): "a@b.co", "n": [{_Key("phone"): "+1 415 555 0100"}]},
        {"e\ud800mail": "x"},
        {"ok": {"email\ud800": "x"}},
        {"items": [{"email": "A@B.co", (1, 2): 3}]},
        *({"a": _nest(d, kind)} for d in (12, 13, 14, 15) for kind in ("list", "dict", "mixed")),
    ],
)
def test_freeze_with_pii_keys_like_freeze_data(policy: str, data: dict[Any, Any]) -> None:
    # twice: the second walk meets the keys in the checked-keys cache
    for _ in range(2):
        expected = _outcome(lambda d: apply_pii_frozen(freeze_data(d, max_bytes=None), policy), data)
        got = _outcome(lambda d: apply_pii_top(*freeze_with_pii(d, policy, max_bytes=None), policy), data)
        assert got == expected
        if got[0] == "ok":
            assert all(type(k) is str for k in got[1])


def test_events_without_items_share_one_read_only_empty_list() -> None:
    from otel_commerce import Order, OrderItem
    from otel_commerce._record import build_pending
    from otel_commerce._record._recorder import NO_ITEMS

    a = build_pending("order.completed", organization_id="acme", data={"order_id": "o-1"})
    b = build_pending("loyalty.points_earned", organization_id="acme", data={"points": 3})
    assert a.items is NO_ITEMS and b.items is NO_ITEMS and list(a.items) == []
    for write in (lambda: a.items.append(1), lambda: a.items.extend([1]), lambda: a.items.insert(0, 1)):
        with pytest.raises(TypeError):
            write()
    with pytest.raises(TypeError):
        a.items += [1]
    assert NO_ITEMS == []
    order = Order(id="o-2", org_id="acme", items=[OrderItem(product_id="p", quantity=1, price=2.0)])
    c = build_pending("order.completed", order=order)
    assert c.items is not NO_ITEMS and [i.product_id for i in c.items] == ["p"]


class _MultiMapping(Mapping[str, Any]):
    """A read-only multi-mapping (as ``multidict.MultiDict``): iterating it yields a repeated key once per
    pair, ``items()`` every pair; ``m[key]`` is its first value."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self._pairs = pairs

    def __getitem__(self, key: str) -> Any:
        for k, v in self._pairs:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def items(self) -> list[tuple[str, Any]]:  # type: ignore[override]
        return list(self._pairs)


@pytest.mark.parametrize("policy", ["hash", "drop"])
@pytest.mark.parametrize(
    "pairs",
    [
        [("email", "a@b.co"), ("email", "c@d.co")],
        [("ip", "10.0.0.1"), ("ip", "10.0.0.2"), ("n", 1)],
        [("user_id", 7), ("user_id", "a@b.co")],
        [("user_id", "a@b.co"), ("user_id", "c@d.co")],
        [("error_message", "mail a@b.co"), ("error_message", "x")],
    ],
)
def test_a_top_level_key_met_twice_gets_the_policy_once(policy: str, pairs: list[tuple[str, Any]]) -> None:
    """A mapping whose iteration repeats a key: the frozen copy holds it once, and the policy is applied to it
    once (a second digest of a digest, or a second ``del`` raising KeyError into record_event, before)."""
    from otel_commerce import record_event
    from otel_commerce._config import Settings
    from otel_commerce._runtime import RUNTIME
    from otel_commerce.testing import capture_events

    data = _MultiMapping(pairs)
    expected = apply_pii_frozen(freeze_data(data, max_bytes=None), policy)
    assert apply_pii_top(*freeze_with_pii(data, policy, max_bytes=None), policy) == expected
    RUNTIME.install(Settings(pii=policy), None)  # type: ignore[arg-type]
    try:
        with capture_events() as events:
            record_event("loyalty.points_earned", id="m-1", organization_id="acme", data=data)
    finally:
        RUNTIME.reset()
    assert events[0].data == expected
