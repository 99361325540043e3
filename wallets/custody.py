"""Owners' own keypairs, held by the service for the real chain (docs/decisions/0011-custody.md).

A held keypair is stored only as a Fernet token (AES-128-CBC with HMAC-SHA256) under
ORDER_ENGINE_WALLET_KEY, which lives in the processes' environment and never in the
database: a copy of the database alone cannot sign. Nothing here shows secret bytes in
its repr or str. Beware solders' own `str(Keypair)`: it is the secret in base58, so a
Keypair is never logged, put in an event or a Temporal payload; only the worker's
signer opens one (`Wallets.keypair`).

Balances on the real chain are the chain's: `ChainBalances` reads them (onchain/
implements it over JSON-RPC), and the engine keeps only what its own orders hold."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from cryptography.fernet import Fernet, InvalidToken
from pydantic import SecretStr
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from core.settings import Settings, is_fernet_key
from wallets.errors import InvalidKeypair, SealBroken

# The Solana CLI's keypair: the 32-byte ed25519 secret, then the 32-byte public key.
KEYPAIR_BYTES = 64
SECRET_BYTES = 32


class ChainBalances(Protocol):
    """What an address holds on chain, read now."""

    async def balances(self, address: str) -> dict[str, int]:
        """Base units per token symbol: SOL (lamports) and each of the registry's tokens
        (0 for one it holds none of)."""
        ...


@dataclass(frozen=True)
class OnChain:
    """An owner's balances as the chain reported them, read before a placement's
    transaction (no RPC call waits inside a database transaction)."""

    owner: str
    balances: Mapping[str, int]


class WalletKeyMissing(RuntimeError):
    """ORDER_ENGINE_WALLET_KEY is unset or not a Fernet key: no keypair can be sealed or
    opened."""


class KeypairSeal:
    """Seals a 64-byte ed25519 keypair into a Fernet token and opens it again. The token
    is authenticated: one altered, or sealed under another key, does not open."""

    def __init__(self, key: SecretStr) -> None:
        text = key.get_secret_value()
        if not is_fernet_key(text):
            raise WalletKeyMissing(
                "ORDER_ENGINE_WALLET_KEY is not a Fernet key (URL-safe base64 of 32 bytes, "
                "as Fernet.generate_key() makes)"
            )
        self._fernet = Fernet(text.encode("ascii"))

    @classmethod
    def from_settings(cls, settings: Settings) -> KeypairSeal:
        if settings.wallet_key is None:
            raise WalletKeyMissing(
                "ORDER_ENGINE_WALLET_KEY is not set: owners' keypairs are sealed with it "
                '(make one: python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())")'
            )
        return cls(settings.wallet_key)

    def seal(self, keypair: Keypair) -> str:
        """The keypair as a Fernet token (URL-safe base64 text), what the database stores."""
        return self._fernet.encrypt(bytes(keypair)).decode("ascii")

    def open(self, token: str) -> Keypair:
        """The keypair a token seals; SealBroken when it does not open with this key."""
        try:
            raw = self._fernet.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            raise SealBroken("the sealed keypair does not open with ORDER_ENGINE_WALLET_KEY") from None
        return Keypair.from_bytes(raw)

    def __repr__(self) -> str:
        return "KeypairSeal(key=<hidden>)"

    __str__ = __repr__


def parse_keypair_json(text: str) -> Keypair:
    """A keypair from the Solana CLI's file format: a JSON array of 64 integers 0..255,
    the secret half then its public key. InvalidKeypair says what is wrong without
    quoting any byte."""
    try:
        values = json.loads(text)
    except ValueError:
        raise InvalidKeypair("not JSON: a keypair file is a JSON array of 64 integers 0..255") from None
    if not isinstance(values, list):
        raise InvalidKeypair("not a JSON array: a keypair file is a JSON array of 64 integers 0..255")
    if len(values) != KEYPAIR_BYTES:
        raise InvalidKeypair(f"{len(values)} elements; a keypair file has exactly {KEYPAIR_BYTES}")
    for index, value in enumerate(values):
        # bool is an int in Python, and JSON's true is no byte.
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 255:
            raise InvalidKeypair(f"element {index} is not an integer 0..255")
    raw = bytes(values)
    derived = Keypair.from_seed(raw[:SECRET_BYTES]).pubkey()
    if derived != Pubkey.from_bytes(raw[SECRET_BYTES:]):
        raise InvalidKeypair(
            "its public half (the last 32 bytes) is not the public key of its secret half "
            "(the first 32): the file is damaged or not a keypair"
        )
    return Keypair.from_bytes(raw)
