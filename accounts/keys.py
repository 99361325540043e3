"""API keys: their format, checksum and stored hash.

A key reads `oe_<id><secret><checksum>`: `oe_` so that it is recognisable (in a leaked
log, by a secret scanner), 8 characters of public id (shown by `keys list`, used by
`keys revoke`), 32 random characters, and a CRC32 checksum in 6 characters, so that a
mistyped key is refused without a database lookup. Only HMAC-SHA256(secret, key) is
stored: a copy of the database alone does not let anyone in."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib
from dataclasses import dataclass

from core.errors import OperatorRequired

PREFIX = "oe_"
ID_LENGTH = 8
SECRET_LENGTH = 32
CHECKSUM_LENGTH = 6
KEY_PATTERN = re.compile(rf"^{PREFIX}[0-9A-Za-z]{{{ID_LENGTH + SECRET_LENGTH + CHECKSUM_LENGTH}}}$")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# The file, in the data directory, that holds the local key (`order-engine dev`).
LOCAL_KEY_FILE = "api-key"
LOCAL_KEY_NAME = "local"


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: a key, the owner it acts for, and its role."""

    key_id: str
    owner: str
    operator: bool

    def may_see(self, owner: str) -> bool:
        """Whether this principal may read what `owner` owns: its own, or anyone's as an operator."""
        return self.operator or owner == self.owner

    def owner_scope(self, requested: str | None, what: str) -> str | None:
        """Whose rows a read covers: an operator's choice (None: everyone's), otherwise the
        principal's own; naming another owner needs an operator key."""
        if requested is not None and not self.may_see(requested):
            raise OperatorRequired(f"only an operator key may read another owner's {what}")
        return requested if self.operator else self.owner


def _base62(number: int, length: int) -> str:
    digits = []
    for _ in range(length):
        number, digit = divmod(number, 62)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), CHECKSUM_LENGTH)


def generate_key() -> str:
    body = PREFIX + "".join(secrets.choice(ALPHABET) for _ in range(ID_LENGTH + SECRET_LENGTH))
    return body + _checksum(body)


def is_well_formed(key: str) -> bool:
    """The shape and checksum are right (says nothing of whether the key exists)."""
    if not KEY_PATTERN.fullmatch(key):
        return False
    body, checksum = key[:-CHECKSUM_LENGTH], key[-CHECKSUM_LENGTH:]
    return hmac.compare_digest(_checksum(body), checksum)


def key_id(key: str) -> str:
    """The public part: safe to show, log and pass to `keys revoke`."""
    return key[: len(PREFIX) + ID_LENGTH]


def hash_key(key: str, secret: str) -> str:
    return hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest()


# Who the operator CLI acts as: it talks to PostgreSQL and Temporal directly, with no key.
CLI_OPERATOR = Principal(key_id="cli", owner="cli", operator=True)
