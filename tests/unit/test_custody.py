"""Owners' keypairs held sealed: what a database copy holds cannot sign without the key,
the Solana CLI's keypair files are read or refused with a reason, and nothing that holds
a keypair or the key shows secret bytes."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from core.settings import Settings
from storage.models import Wallet
from wallets.custody import KeypairSeal, WalletKeyMissing, parse_keypair_json
from wallets.errors import InvalidKeypair, SealBroken
from wallets.schemas import Balance

KEY = SecretStr(Fernet.generate_key().decode())


def secret_forms(keypair: Keypair) -> list[str]:
    """The ways a keypair's secret may be spelled in text."""
    raw = bytes(keypair)
    return [
        raw.hex(),
        raw[:32].hex(),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw[:32]).decode().rstrip("="),
        str(keypair),  # solders' own str: the base58 of the 64 bytes
        str(Pubkey.from_bytes(raw[:32])),  # the secret half in base58
        json.dumps(list(raw)),
    ]


def test_a_sealed_keypair_opens_to_the_same_keypair() -> None:
    keypair = Keypair()
    seal = KeypairSeal(KEY)
    opened = seal.open(seal.seal(keypair))
    assert bytes(opened) == bytes(keypair) and opened.pubkey() == keypair.pubkey()


def test_a_token_does_not_open_with_another_key_or_altered() -> None:
    token = KeypairSeal(KEY).seal(Keypair())
    with pytest.raises(SealBroken):
        KeypairSeal(SecretStr(Fernet.generate_key().decode())).open(token)
    altered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    with pytest.raises(SealBroken):
        KeypairSeal(KEY).open(altered)


def test_the_stored_token_holds_neither_the_keypair_nor_the_key() -> None:
    keypair = Keypair()
    token = KeypairSeal(KEY).seal(keypair)
    decoded = base64.urlsafe_b64decode(token)
    for form in secret_forms(keypair):
        assert form not in token
    assert bytes(keypair)[:32] not in decoded
    key = KEY.get_secret_value()
    assert key not in token and base64.urlsafe_b64decode(key) not in decoded


def test_sealing_twice_gives_different_tokens() -> None:
    """Equal keypairs are not recognizable as equal in a database copy."""
    keypair = Keypair()
    seal = KeypairSeal(KEY)
    assert seal.seal(keypair) != seal.seal(keypair)


def test_the_seal_needs_a_fernet_key() -> None:
    with pytest.raises(WalletKeyMissing, match="not a Fernet key"):
        KeypairSeal(SecretStr("not-a-key"))
    with pytest.raises(WalletKeyMissing, match="not set"):
        KeypairSeal.from_settings(Settings(ORDER_ENGINE_WALLET_KEY=""))
    assert isinstance(
        KeypairSeal.from_settings(Settings(ORDER_ENGINE_WALLET_KEY=KEY.get_secret_value())),
        KeypairSeal,
    )


def test_nothing_holding_a_keypair_or_the_key_shows_secret_bytes() -> None:
    keypair = Keypair()
    seal = KeypairSeal(KEY)
    token = seal.seal(keypair)
    row = Wallet(owner="alice", address=str(keypair.pubkey()), seed="", sealed_keypair=token)
    settings = Settings(ORDER_ENGINE_WALLET_KEY=KEY.get_secret_value())
    shown = " ".join(
        [repr(seal), str(seal), repr(row), str(row), repr(settings), str(settings), repr(settings.wallet_key)]
    )
    assert KEY.get_secret_value() not in shown and token not in shown
    for form in secret_forms(keypair):
        assert form not in shown


def solana_cli_file(keypair: Keypair) -> str:
    return json.dumps(list(bytes(keypair)))


def test_a_solana_cli_keypair_file_is_read() -> None:
    keypair = Keypair()
    assert parse_keypair_json(solana_cli_file(keypair)).pubkey() == keypair.pubkey()
    assert parse_keypair_json(" \n" + solana_cli_file(keypair) + "\n").pubkey() == keypair.pubkey()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "not JSON"),
        ("{}", "not a JSON array"),
        (json.dumps(list(range(63))), "63 elements"),
        (json.dumps([*range(63), 256]), "element 63 is not an integer 0..255"),
        (json.dumps([*range(63), -1]), "element 63 is not an integer 0..255"),
        (json.dumps([1.5, *range(63)]), "element 0 is not an integer 0..255"),
        (json.dumps([True, *range(63)]), "element 0 is not an integer 0..255"),
        (json.dumps(["7", *range(63)]), "element 0 is not an integer 0..255"),
    ],
)
def test_a_file_that_is_not_64_bytes_is_refused_with_why(text: str, reason: str) -> None:
    with pytest.raises(InvalidKeypair, match=reason):
        parse_keypair_json(text)


def test_a_public_half_that_is_not_the_secret_halfs_is_refused_without_quoting_bytes() -> None:
    mine, other = Keypair(), Keypair()
    mixed = bytes(mine)[:32] + bytes(other.pubkey())
    with pytest.raises(InvalidKeypair, match="public half") as refused:
        parse_keypair_json(json.dumps(list(mixed)))
    for form in secret_forms(mine):
        assert form not in refused.value.detail
    assert str(other.pubkey()) not in refused.value.detail


def test_available_is_never_below_zero() -> None:
    """On chain others may spend from the address while the engine's orders hold more."""
    assert Balance("SOL", total=5, reserved=8).available == 0
    assert Balance("SOL", total=8, reserved=5).available == 3
