"""The venues file (`ORDER_ENGINE_VENUES_FILE`, TOML): which tokens and pools the engine
trades on a real cluster. Only mints and pool addresses are written down; decimals,
token programs, vaults and fee rates come from the chain (onchain/pools.py).

    [tokens.SOL]
    mint = "So11111111111111111111111111111111111111112"
    [[pools]]
    venue = "meteora_dlmm"            # or "raydium_cpmm"
    address = "EtAdVRLFH22rjWh3mcUasKFF27WtHhsaCvK27tPFFWig"
    [landing]
    tip_accounts = []                 # optional: block-engine tip accounts
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from solders.pubkey import Pubkey

from core.domain import Dex

SYMBOL = re.compile(r"[A-Za-z0-9]{1,16}")


class VenueKind(StrEnum):
    """A venue as the file names it: the program, not just the brand."""

    METEORA_DLMM = "meteora_dlmm"
    RAYDIUM_CPMM = "raydium_cpmm"

    @property
    def dex(self) -> Dex:
        return Dex.METEORA if self is VenueKind.METEORA_DLMM else Dex.RAYDIUM


class VenuesFileError(ValueError):
    """The file does not load; the message says where and why."""


@dataclass(frozen=True)
class PoolEntry:
    venue: VenueKind
    address: Pubkey


@dataclass(frozen=True)
class VenuesFile:
    tokens: dict[str, Pubkey]  # symbol -> mint
    pools: tuple[PoolEntry, ...]
    tip_accounts: tuple[Pubkey, ...] = ()

    def symbol_of(self, mint: Pubkey) -> str | None:
        return next((symbol for symbol, known in self.tokens.items() if known == mint), None)


def load_venues_file(path: Path) -> VenuesFile:
    try:
        text = path.read_text()
    except OSError as error:
        raise VenuesFileError(f"{path}: cannot read it ({error.strerror})") from None
    except UnicodeDecodeError:
        raise VenuesFileError(f"{path}: not valid TOML (not UTF-8 text)") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise VenuesFileError(f"{path}: not valid TOML ({error})") from None
    return parse_venues(document, str(path))


def parse_venues(document: dict[str, Any], where: str = "venues file") -> VenuesFile:
    unknown = set(document) - {"tokens", "pools", "landing"}
    if unknown:
        raise VenuesFileError(f"{where}: unknown section(s) {', '.join(sorted(unknown))}")
    tokens: dict[str, Pubkey] = {}
    raw_tokens = document.get("tokens", {})
    if not isinstance(raw_tokens, dict) or not raw_tokens:
        raise VenuesFileError(f"{where}: [tokens.SYMBOL] tables with a mint are required")
    for symbol, table in raw_tokens.items():
        if not SYMBOL.fullmatch(symbol):
            raise VenuesFileError(f"{where}: token symbol {symbol!r} must be 1-16 letters or digits")
        if not isinstance(table, dict) or set(table) != {"mint"}:
            raise VenuesFileError(f'{where}: [tokens.{symbol}] must hold exactly `mint = "…"`')
        tokens[symbol] = _pubkey(table["mint"], f"{where}: tokens.{symbol}.mint")
    named: dict[Pubkey, str] = {}
    for symbol, mint in tokens.items():
        if mint in named:
            raise VenuesFileError(
                f"{where}: tokens.{named[mint]} and tokens.{symbol} name the same mint {mint}"
            )
        named[mint] = symbol
    if "SOL" not in tokens or str(tokens["SOL"]) != "So11111111111111111111111111111111111111112":
        raise VenuesFileError(f"{where}: [tokens.SOL] must be the native mint (fees are paid in SOL)")
    raw_pools = document.get("pools", [])
    if not isinstance(raw_pools, list) or not raw_pools:
        raise VenuesFileError(f"{where}: at least one [[pools]] entry is required")
    pools: list[PoolEntry] = []
    for number, table in enumerate(raw_pools, start=1):
        label = f"{where}: pools #{number}"
        if not isinstance(table, dict) or set(table) != {"venue", "address"}:
            raise VenuesFileError(f"{label} must hold exactly `venue` and `address`")
        try:
            venue = VenueKind(table["venue"])
        except ValueError:
            choices = ", ".join(kind.value for kind in VenueKind)
            raise VenuesFileError(f"{label}: venue {table['venue']!r} is not one of {choices}") from None
        address = _pubkey(table["address"], f"{label}.address")
        earlier = next((n for n, pool in enumerate(pools, start=1) if pool.address == address), None)
        if earlier is not None:
            raise VenuesFileError(f"{label}: {address} is listed twice (also pools #{earlier})")
        pools.append(PoolEntry(venue, address))
    landing = document.get("landing", {})
    if not isinstance(landing, dict) or set(landing) - {"tip_accounts"}:
        raise VenuesFileError(f"{where}: [landing] may hold only `tip_accounts`")
    tips = landing.get("tip_accounts", [])
    if not isinstance(tips, list):
        raise VenuesFileError(f"{where}: landing.tip_accounts must be a list of addresses")
    return VenuesFile(
        tokens,
        tuple(pools),
        tuple(_pubkey(tip, f"{where}: landing.tip_accounts[{n}]") for n, tip in enumerate(tips)),
    )


def _pubkey(value: object, label: str) -> Pubkey:
    if not isinstance(value, str):
        raise VenuesFileError(f"{label} must be a base58 address string")
    try:
        return Pubkey.from_string(value)
    except ValueError:
        raise VenuesFileError(f"{label}: {value!r} is not a base58 address") from None
