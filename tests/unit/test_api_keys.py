"""API keys: recognisable, self-checking, stored only as an HMAC."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accounts.keys import ALPHABET, Principal, generate_key, hash_key, is_well_formed, key_id
from core.errors import OperatorRequired


def test_a_key_is_recognisable_and_its_hash_reveals_nothing() -> None:
    key = generate_key()
    assert key.startswith("oe_") and len(key) == 49 and is_well_formed(key)
    assert all(c.isalnum() or c == "_" for c in key)
    digest = hash_key(key, "secret")
    assert len(digest) == 64 and key not in digest and key_id(key)[3:] not in digest
    assert hash_key(key, "another secret") != digest  # the database alone cannot check a key
    assert generate_key() != key


@given(st.integers(min_value=3, max_value=48), st.sampled_from(ALPHABET))
def test_a_mistyped_key_fails_its_checksum(position: int, replacement: str) -> None:
    key = generate_key()
    typo = key[:position] + replacement + key[position + 1 :]
    assert is_well_formed(typo) == (typo == key)


def test_junk_is_not_a_key() -> None:
    for junk in ["", "oe_", "Bearer x", "oe_" + "a" * 46, generate_key() + "x", generate_key().upper()]:
        assert not is_well_formed(junk)


def test_an_owner_sees_its_own_and_an_operator_sees_everyones() -> None:
    trader, operator = Principal("k1", "alice", operator=False), Principal("k2", "ops", operator=True)
    assert trader.may_see("alice") and not trader.may_see("bob")
    assert operator.may_see("alice") and operator.may_see("bob")
    assert trader.owner_scope(None, "orders") == "alice"
    assert trader.owner_scope("alice", "orders") == "alice"
    with pytest.raises(OperatorRequired):
        trader.owner_scope("bob", "orders")
    assert operator.owner_scope(None, "orders") is None  # everyone's
    assert operator.owner_scope("bob", "orders") == "bob"
