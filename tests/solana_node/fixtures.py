"""Recorded mainnet accounts from /work/shared/fixtures/solana (or any folder of such
fixtures): every `manifest.json` under the folder names its accounts as
{"address", "owner" (a key of the manifest's "programs"), "file"}; an entry without a
file (the native mint) is left out. Lamports are not recorded, so each account gets the
rent-exempt minimum for its size, plus its token amount when it is a wrapped-SOL account
(where SPL Token keeps lamports = reserve + amount)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from solders.pubkey import Pubkey

from onchain.spl import NATIVE_MINT
from tests.solana_node.accounts import Account, is_token_account, read_token, rent_exempt_minimum

REPOSITORY = Path(__file__).resolve().parents[2]


def fixtures_directory() -> Path:
    """The mainnet account fixtures, kept in the repository (tests/fixtures/solana, a copy
    of the project's ../shared/fixtures/solana) so a clean clone needs nothing beside it."""
    return REPOSITORY / "tests" / "fixtures" / "solana"


def shared_fixtures_directory() -> Path | None:
    """The project's shared copy beside the checkout, where there is one."""
    for folder in REPOSITORY.parents:
        candidate = folder / "shared" / "fixtures" / "solana"
        if candidate.is_dir():
            return candidate
    return None


def _entries(node: object) -> Iterator[dict[str, object]]:
    if isinstance(node, dict):
        if {"address", "owner", "file"} <= node.keys():
            yield node
            return
        for value in node.values():
            yield from _entries(value)
    elif isinstance(node, list):
        for value in node:
            yield from _entries(value)


def load_fixture_accounts(directory: Path) -> dict[Pubkey, Account]:
    accounts: dict[Pubkey, Account] = {}
    for manifest_path in sorted(directory.rglob("manifest.json")):
        manifest = json.loads(manifest_path.read_text())
        programs: dict[str, str] = manifest.get("programs", {})
        for entry in _entries(manifest):
            if entry["file"] is None:
                continue
            owner_name = str(entry["owner"])
            owner = Pubkey.from_string(programs.get(owner_name, owner_name))
            data = (manifest_path.parent / str(entry["file"])).read_bytes()
            account = Account(rent_exempt_minimum(len(data)), owner, data)
            if is_token_account(account) and (state := read_token(data)).mint == NATIVE_MINT:
                account = account.with_lamports((state.native_reserve or account.lamports) + state.amount)
            accounts[Pubkey.from_string(str(entry["address"]))] = account
    return accounts
