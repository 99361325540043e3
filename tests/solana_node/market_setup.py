"""A cluster to trade on in the tests: the test node over the real mainnet DLMM pool of
a pump.fun token against SOL (the fixtures), a Raydium CPMM pool of the same pair made
with our encoder at about the same price, both venues' programs emulated, and a venues
file naming them."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from onchain import meteora_dlmm, raydium_cpmm
from onchain.raydium_cpmm import AmmConfig, PoolState, authority_address, encode_pool_state
from onchain.spl import NATIVE_MINT, TOKEN_PROGRAM, decode_mint
from tests.solana_node.accounts import Account, rent_exempt_minimum, token_account_data
from tests.solana_node.cpmm_program import raydium_cpmm_program
from tests.solana_node.dlmm_program import DlmmProgram
from tests.solana_node.fixtures import fixtures_directory, load_fixture_accounts
from tests.solana_node.litesvm_runtime import LiteSvmRuntime
from tests.solana_node.node import SolanaNode

DLMM_POOL = Pubkey.from_string("EtAdVRLFH22rjWh3mcUasKFF27WtHhsaCvK27tPFFWig")  # PUMP (x) / SOL (y)
PUMP_MINT = Pubkey.from_string("Df6yfrKC8kZE3KNkrHERKzAetSxbrWeniQfyJY4Jpump")
CPMM_POOL = Pubkey.create_with_seed(Pubkey.default(), "test cpmm pool", Pubkey.default())
AMM_CONFIG = Pubkey.from_string("D4FPEruKEHrG5TenZ2mpDGEfu1iUvTiqBxvpU8HLBvC2")  # mainnet index 0
CPMM_SOL = 40 * 10**9  # the synthetic pool's SOL side


@dataclass(frozen=True)
class ChainUnderTest:
    node: SolanaNode
    venues_file: Path
    dlmm_price: Decimal  # SOL per PUMP (human units), the DLMM pool's active bin


def _key(label: str) -> Pubkey:
    return Pubkey.create_with_seed(Pubkey.default(), label, Pubkey.default())


def _native_mint() -> Account:
    data = bytearray(82)
    data[44], data[45] = 9, 1  # decimals, initialized
    return Account(rent_exempt_minimum(82), TOKEN_PROGRAM, bytes(data))


def _vault(mint: Pubkey, amount: int) -> Account:
    native = mint == NATIVE_MINT
    reserve = rent_exempt_minimum(165)
    data = token_account_data(mint, authority_address(), amount, reserve if native else None)
    return Account(reserve + (amount if native else 0), TOKEN_PROGRAM, data)


def start_test_cluster(
    directory: Path, slot_ms: int | None = 50, dlmm_binary: Path | None = None
) -> ChainUnderTest:
    """A started node (stop it) and a venues file in `directory`. With `dlmm_binary` the
    node runs transactions in LiteSVM with the real DLMM program, and the venues file
    names only the DLMM pool (there is no CPMM binary to run the other)."""
    accounts = load_fixture_accounts(fixtures_directory())
    accounts[NATIVE_MINT] = _native_mint()
    pump = decode_mint(PUMP_MINT, TOKEN_PROGRAM, accounts[PUMP_MINT].data)
    pair = meteora_dlmm.decode_lb_pair(DLMM_POOL, accounts[DLMM_POOL].data)
    # Q64.64 price of the active bin: lamports per PUMP base unit.
    price_x64 = meteora_dlmm.dlmm_book(pair, []).price_x64(pair.active_id)
    lamports_per_unit = Decimal(price_x64) / 2**64
    pump_units = int(CPMM_SOL / lamports_per_unit)
    config_path = fixtures_directory() / "raydium-cpmm" / "amm_config.bin"
    accounts[AMM_CONFIG] = Account(
        rent_exempt_minimum(config_path.stat().st_size), raydium_cpmm.PROGRAM_ID, config_path.read_bytes()
    )
    # Token 0 is the lesser mint (the program orders them when a pool is made).
    mint_0, mint_1 = sorted((NATIVE_MINT, PUMP_MINT), key=bytes)
    amounts = {NATIVE_MINT: CPMM_SOL, PUMP_MINT: pump_units}
    decimals = {NATIVE_MINT: 9, PUMP_MINT: pump.decimals}
    state = PoolState(
        address=CPMM_POOL,
        amm_config=AMM_CONFIG,
        pool_creator=_key("creator"),
        token_0_vault=_key("vault 0"),
        token_1_vault=_key("vault 1"),
        lp_mint=_key("lp mint"),
        token_0_mint=mint_0,
        token_1_mint=mint_1,
        token_0_program=TOKEN_PROGRAM,
        token_1_program=TOKEN_PROGRAM,
        observation_key=_key("observation"),
        auth_bump=255,
        status=0,
        lp_mint_decimals=9,
        mint_0_decimals=decimals[mint_0],
        mint_1_decimals=decimals[mint_1],
        lp_supply=10**12,
        protocol_fees_token_0=0,
        protocol_fees_token_1=0,
        fund_fees_token_0=0,
        fund_fees_token_1=0,
        open_time=0,
        recent_epoch=0,
        creator_fee_on=0,
        enable_creator_fee=False,
        creator_fees_token_0=0,
        creator_fees_token_1=0,
    )
    data = encode_pool_state(state)
    accounts[CPMM_POOL] = Account(rent_exempt_minimum(len(data)), raydium_cpmm.PROGRAM_ID, data)
    accounts[state.token_0_vault] = _vault(mint_0, amounts[mint_0])
    accounts[state.token_1_vault] = _vault(mint_1, amounts[mint_1])
    accounts[state.observation_key] = Account(rent_exempt_minimum(8), raydium_cpmm.PROGRAM_ID, bytes(8))
    node = SolanaNode(accounts, slot_ms=slot_ms)
    node.register_program(meteora_dlmm.PROGRAM_ID, DlmmProgram(epoch=node.epoch, slot=node.slot))
    node.register_program(raydium_cpmm.PROGRAM_ID, raydium_cpmm_program)
    if dlmm_binary is not None:
        node.state.runtime = LiteSvmRuntime({meteora_dlmm.PROGRAM_ID: dlmm_binary})
    node.start()
    venues_file = directory / "venues.toml"
    cpmm_entry = f"""[[pools]]
venue = "raydium_cpmm"
address = "{CPMM_POOL}"
"""
    venues_file.write_text(
        f"""[tokens.SOL]
mint = "{NATIVE_MINT}"
[tokens.PUMP]
mint = "{PUMP_MINT}"
[[pools]]
venue = "meteora_dlmm"
address = "{DLMM_POOL}"
{cpmm_entry if dlmm_binary is None else ""}"""
    )
    per_human = lamports_per_unit * Decimal(10) ** (pump.decimals - 9)
    return ChainUnderTest(node, venues_file, per_human)


def vault_amounts(node: SolanaNode) -> dict[Pubkey, int]:
    """The synthetic CPMM pool's vault balances, by mint."""
    state = raydium_cpmm.decode_pool_state(CPMM_POOL, _data(node, CPMM_POOL))
    found: dict[Pubkey, int] = {}
    for mint, vault in ((state.token_0_mint, state.token_0_vault), (state.token_1_mint, state.token_1_vault)):
        (found[mint],) = struct.unpack_from("<Q", _data(node, vault), 64)
    return found


def drain_cpmm(node: SolanaNode, mint: Pubkey, fraction: Decimal) -> None:
    """Another trader's doing: the CPMM pool holds `fraction` less of `mint` (what it
    pays out of that token falls; a negative fraction adds, and it pays more)."""
    state = raydium_cpmm.decode_pool_state(CPMM_POOL, _data(node, CPMM_POOL))
    vault = state.token_0_vault if state.token_0_mint == mint else state.token_1_vault
    account = node.account(vault)
    assert account is not None
    (amount,) = struct.unpack_from("<Q", account.data, 64)
    left = int(amount * (1 - fraction))
    data = bytearray(account.data)
    struct.pack_into("<Q", data, 64, left)
    lamports = account.lamports - (amount - left if mint == NATIVE_MINT else 0)
    node.set_account(vault, Account(lamports, account.owner, bytes(data)))


def price_cpmm(node: SolanaNode, lamports_per_pump_unit: Decimal) -> None:
    """Set the CPMM pool's PUMP vault so that its mid price is this (SOL side kept)."""
    sol = vault_amounts(node)[NATIVE_MINT]
    have = vault_amounts(node)[PUMP_MINT]
    drain_cpmm(node, PUMP_MINT, 1 - Decimal(sol) / lamports_per_pump_unit / have)


def _data(node: SolanaNode, address: Pubkey) -> bytes:
    account = node.account(address)
    assert account is not None, address
    return account.data


def new_trader(node: SolanaNode, sol: int = 5 * 10**9) -> Keypair:
    keypair = Keypair()
    node.fund_sol(keypair.pubkey(), sol)
    return keypair


__all__ = [
    "AmmConfig",
    "ChainUnderTest",
    "drain_cpmm",
    "new_trader",
    "price_cpmm",
    "start_test_cluster",
    "vault_amounts",
]
