"""The three real Meteora DLMM pools recorded from mainnet (../shared/fixtures/solana/
meteora-dlmm, manifest.json): each account's address, owner program and bytes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from solders.pubkey import Pubkey

from onchain.meteora_dlmm import BinArray, LbPair, decode_bin_array, decode_lb_pair
from onchain.spl import NATIVE_MINT, TOKEN_PROGRAM, Mint, decode_mint
from tests.solana_node.fixtures import fixtures_directory


def fixtures_root() -> Path:
    return fixtures_directory()


DLMM_DIR = fixtures_root() / "meteora-dlmm"


@dataclass(frozen=True)
class FixtureAccount:
    address: Pubkey
    owner: Pubkey
    data: bytes | None  # None: not recorded (the native mint)


@dataclass(frozen=True)
class DlmmFixture:
    name: str
    accounts: dict[str, FixtureAccount]

    @property
    def address(self) -> Pubkey:
        return self.accounts["lb_pair"].address

    def data(self, name: str) -> bytes:
        data = self.accounts[name].data
        assert data is not None, name
        return data

    def pair(self) -> LbPair:
        return decode_lb_pair(self.address, self.data("lb_pair"))

    def bin_arrays(self) -> list[BinArray]:
        return [
            decode_bin_array(self.accounts[name].address, self.data(name))
            for name in ("bin_array_1", "bin_array_2")
        ]

    def mint(self, name: str) -> Mint:
        account = self.accounts[name]
        if account.data is None:
            assert account.address == NATIVE_MINT and account.owner == TOKEN_PROGRAM
            return decode_mint(account.address, account.owner, native_mint_data())
        return decode_mint(account.address, account.owner, account.data)


def native_mint_data() -> bytes:
    """The native mint as SPL Token holds it: no authority, 9 decimals, initialized."""
    data = bytearray(82)
    data[44], data[45] = 9, 1
    return bytes(data)


@cache
def dlmm_fixtures() -> tuple[DlmmFixture, ...]:
    manifest = json.loads((DLMM_DIR / "manifest.json").read_text())
    programs = {name: Pubkey.from_string(key) for name, key in manifest["programs"].items()}
    pools = []
    for pool in manifest["pools"]:
        accounts = {
            name: FixtureAccount(
                Pubkey.from_string(entry["address"]),
                programs[entry["owner"]],
                (DLMM_DIR / entry["file"]).read_bytes() if entry["file"] else None,
            )
            for name, entry in pool["accounts"].items()
        }
        pools.append(DlmmFixture(pool["lb_pair"], accounts))
    return tuple(pools)


def dlmm_fixture(prefix: str) -> DlmmFixture:
    return next(pool for pool in dlmm_fixtures() if pool.name.startswith(prefix))
