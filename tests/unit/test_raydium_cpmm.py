"""Raydium CPMM against the program's source (github raydium-io/raydium-cp-swap,
programs/cp-swap/src, commit 609780f) and a real mainnet AmmConfig: layouts, quotes to the
base unit, instructions, and the test node's emulation of the swap."""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from solders.pubkey import Pubkey

from contracts.failures import MarketErrorCode
from core.domain import Dex, SwapMode
from market.cpmm import CpmmFeeRates, CpmmPool, CreatorFeeOn, swap_base_input, swap_base_output
from market.pools import meteora_sol_usdc, pool_from_state
from market.routing import plan_route
from onchain.raydium_cpmm import (
    AMM_CONFIG_LEN,
    DEVNET_PROGRAM_ID,
    POOL_STATE_LEN,
    PROGRAM_ID,
    AmmConfig,
    NotACpmmAccount,
    PoolState,
    amm_config_address,
    authority_address,
    cpmm_pool,
    decode_amm_config,
    decode_pool_state,
    encode_amm_config,
    encode_pool_state,
    program_error,
    swap_base_input_instruction,
    swap_base_output_instruction,
)
from onchain.spl import ACCOUNT_LEN, TOKEN_2022_PROGRAM, TOKEN_PROGRAM
from tests.solana_node.cpmm_program import raydium_cpmm_program
from tests.solana_node.fixtures import fixtures_directory
from tests.solana_node.programs import ProgramFailure, TokenMove


def fixtures_dir() -> Path:
    return fixtures_directory()


def key(label: str) -> Pubkey:
    return Pubkey(hashlib.sha256(label.encode()).digest())


MAINNET_FEES = CpmmFeeRates(trade_fee_rate=2500, protocol_fee_rate=120_000, fund_fee_rate=40_000)


def pool(
    vault_base: int = 1_000_000,
    vault_quote: int = 1_000_000,
    rates: CpmmFeeRates = MAINNET_FEES,
    **changes: Any,
) -> CpmmPool:
    made = CpmmPool(Dex.RAYDIUM, "SOL", "USDC", vault_base, vault_quote, rates, 9, 6)
    return replace(made, **changes)


# --- accounts -------------------------------------------------------------------------


def test_the_real_mainnet_amm_config_decodes_to_its_known_fields() -> None:
    folder = fixtures_dir() / "raydium-cpmm"
    manifest = json.loads((folder / "manifest.json").read_text())
    entry = manifest["accounts"]["amm_config_index_0"]
    data = (folder / entry["file"]).read_bytes()
    address = Pubkey.from_string(entry["address"])

    config = decode_amm_config(address, data)

    known = entry["known"]
    assert config.index == known["index"] == 0
    assert config.trade_fee_rate == known["trade_fee_rate"]
    assert config.protocol_fee_rate == known["protocol_fee_rate"]
    assert config.fund_fee_rate == known["fund_fee_rate"]
    assert config.create_pool_fee == known["create_pool_fee_lamports"]
    assert len(data) == AMM_CONFIG_LEN  # config.rs 34
    assert encode_amm_config(config) == data
    # Its address is the PDA of index 0 (admin/create_config.rs 19-22).
    assert amm_config_address(0) == address
    assert manifest["programs"]["raydium_cpmm"] == str(PROGRAM_ID)


def test_bytes_that_are_not_an_amm_config_are_refused() -> None:
    data = (fixtures_dir() / "raydium-cpmm" / "amm_config.bin").read_bytes()
    with pytest.raises(NotACpmmAccount):
        decode_amm_config(key("config"), b"\x00" * 8 + data[8:])
    with pytest.raises(NotACpmmAccount):
        decode_pool_state(key("config"), data)


def synthetic_state(**changes: Any) -> PoolState:
    state = PoolState(
        address=key("pool"),
        amm_config=amm_config_address(0),
        pool_creator=key("creator"),
        token_0_vault=key("vault 0"),
        token_1_vault=key("vault 1"),
        lp_mint=key("lp"),
        token_0_mint=key("mint 0"),
        token_1_mint=key("mint 1"),
        token_0_program=TOKEN_PROGRAM,
        token_1_program=TOKEN_2022_PROGRAM,
        observation_key=key("observation"),
        auth_bump=253,
        status=0,
        lp_mint_decimals=9,
        mint_0_decimals=9,
        mint_1_decimals=6,
        lp_supply=123_456_789,
        protocol_fees_token_0=11,
        protocol_fees_token_1=12,
        fund_fees_token_0=13,
        fund_fees_token_1=14,
        open_time=1_700_000_000,
        recent_epoch=777,
        creator_fee_on=0,
        enable_creator_fee=False,
        creator_fees_token_0=0,
        creator_fees_token_1=0,
    )
    return replace(state, **changes)


u64 = st.integers(0, 2**64 - 1)
u8 = st.integers(0, 255)


@given(
    status=u8,
    lp_supply=u64,
    fees=st.tuples(u64, u64, u64, u64, u64, u64),
    open_time=u64,
    creator_fee_on=st.integers(0, 2),
    enable_creator_fee=st.booleans(),
    padding1=st.binary(min_size=6, max_size=6),
    padding=st.tuples(*[u64] * 28),
)
def test_a_pool_state_round_trips_through_the_programs_layout(
    status: int,
    lp_supply: int,
    fees: tuple[int, int, int, int, int, int],
    open_time: int,
    creator_fee_on: int,
    enable_creator_fee: bool,
    padding1: bytes,
    padding: tuple[int, ...],
) -> None:
    state = synthetic_state(
        status=status,
        lp_supply=lp_supply,
        protocol_fees_token_0=fees[0],
        protocol_fees_token_1=fees[1],
        fund_fees_token_0=fees[2],
        fund_fees_token_1=fees[3],
        creator_fees_token_0=fees[4],
        creator_fees_token_1=fees[5],
        open_time=open_time,
        creator_fee_on=creator_fee_on,
        enable_creator_fee=enable_creator_fee,
        padding1=padding1,
        padding=padding,
    )
    data = encode_pool_state(state)
    assert len(data) == POOL_STATE_LEN == 637  # pool.rs 132
    assert decode_pool_state(state.address, data) == state
    assert encode_pool_state(decode_pool_state(state.address, data)) == data


def test_pool_state_fields_sit_at_the_programs_packed_offsets() -> None:
    """repr(C, packed) (pool.rs 63-129): ten keys after the discriminator, five u8 from 328,
    u64s unaligned from 333, creator fee fields from 389."""
    state = synthetic_state(
        open_time=0x0102030405060708, creator_fee_on=2, enable_creator_fee=True, creator_fees_token_1=99
    )
    data = encode_pool_state(state)
    assert data[:8] == hashlib.sha256(b"account:PoolState").digest()[:8]
    assert data[8:40] == bytes(state.amm_config)
    assert data[296:328] == bytes(state.observation_key)
    assert data[328:333] == bytes([253, 0, 9, 9, 6])
    assert struct.unpack_from("<Q", data, 333)[0] == 123_456_789  # lp_supply
    assert struct.unpack_from("<Q", data, 373)[0] == 0x0102030405060708  # open_time
    assert data[389:391] == b"\x02\x01"
    assert struct.unpack_from("<Q", data, 405)[0] == 99  # creator_fees_token_1


def test_the_pool_opens_at_open_time_and_not_while_swaps_are_disabled() -> None:
    """swap_base_input.rs 79-83: NotApproved before open_time or with status bit 2 set."""
    state = synthetic_state()
    assert not state.is_open(state.open_time - 1)
    assert state.is_open(state.open_time)
    assert not replace(state, status=4).is_open(state.open_time)
    assert replace(state, status=3).is_open(state.open_time)  # deposit/withdraw bits only


def test_cpmm_pool_trades_the_vaults_less_every_fee_owed() -> None:
    state = synthetic_state(enable_creator_fee=True, creator_fees_token_0=5, creator_fees_token_1=7)
    config = AmmConfig(
        state.amm_config, 255, False, 0, 2500, 120_000, 40_000, 0, key("p"), key("f"), creator_fee_rate=1000
    )
    made = cpmm_pool(state, config, 5_000_000_000, 750_000_000, "SOL", "USDC")
    assert made.reserve_base == 5_000_000_000 - (11 + 13 + 5)  # pool.rs 200-221
    assert made.reserve_quote == 750_000_000 - (12 + 14 + 7)
    assert made.rates == CpmmFeeRates(2500, 120_000, 40_000, 1000)
    assert made.opens_at == 1_700_000_000.0
    # A pool without the creator fee enabled charges none (pool.rs 318-324).
    assert (
        cpmm_pool(replace(state, enable_creator_fee=False), config, 10, 10, "A", "B").rates.creator_fee_rate
        == 0
    )
    with pytest.raises(NotACpmmAccount):
        cpmm_pool(state, replace(config, address=key("other")), 10, 10, "A", "B")


# --- quotes -----------------------------------------------------------------------------


def test_the_trade_fee_is_rounded_up() -> None:
    """fees.rs 30-36 (ceil_div, 7-16): 400 × 0.25 % is exactly 1; 401 pays 2, so it buys
    no more than 400 does. Output: ⌊399 · 10⁶ / 1 000 399⌋ = 398 (constant_product.rs 26-28)."""
    at_400 = pool().quote_swap("SOL", 400)
    at_401 = pool().quote_swap("SOL", 401)
    assert (at_400.fee, at_400.amount_out) == (1, 398)
    assert (at_401.fee, at_401.amount_out) == (2, 398)


def test_protocol_and_fund_fees_are_rounded_down_and_stay_owed_in_the_input_vault() -> None:
    """fees.rs 39-54 (floor_div 19-26); pool.rs 338-343: owed in the input token.
    3 600 in: trade fee 9; protocol ⌊9 × 0.12⌋ = 1, fund ⌊9 × 0.04⌋ = 0.
    10 000 in: trade fee 25; protocol 3, fund 1."""
    small = swap_base_input(3_600, 1_000_000, 1_000_000, MAINNET_FEES, True)
    large = swap_base_input(10_000, 1_000_000, 1_000_000, MAINNET_FEES, True)
    assert small is not None and large is not None
    assert (small.trade_fee, small.protocol_fee, small.fund_fee) == (9, 1, 0)
    assert (large.trade_fee, large.protocol_fee, large.fund_fee) == (25, 3, 1)

    result, after = pool().swap("SOL", 10_000)
    assert after.vault_base == 1_010_000 and after.vault_quote == 1_000_000 - result.amount_out
    assert (after.owed_base, after.owed_quote) == (4, 0)
    assert after.reserve_base == 1_000_000 + 10_000 - 4


@pytest.mark.parametrize(
    ("amount_in", "reserve_in", "reserve_out", "expected_out"),
    [
        # The program's own truncation cases (constant_product.rs 179-200), fee-free.
        (10, 4_000_000, 70_000_000_000, 174_999),
        (20, 30_000 - 20, 10_000, 6),
        (18, 30_000 - 20, 10_000, 6),
        (10, 20_000, 30_000, 14),
        (10, 20_000 - 10, 30_000, 15),
        (100, 60_000, 30_000, 49),
        (98, 60_000, 30_000, 48),
    ],
)
def test_the_output_is_rounded_down(
    amount_in: int, reserve_in: int, reserve_out: int, expected_out: int
) -> None:
    # Fee-free; the creator fee (zero) on the output side, since a zero combined rate on
    # the input side divides by zero in the program (fees.rs 19-22, 65-75).
    free = pool(reserve_in, reserve_out, CpmmFeeRates(0, 0, 0), creator_fee_on=CreatorFeeOn.ONLY_TOKEN_1)
    assert free.quote_swap("SOL", amount_in).amount_out == expected_out


def test_reserves_exclude_the_fees_owed() -> None:
    owing = pool(1_100_000, 1_000_050, owed_base=100_000, owed_quote=50)
    clean = pool(1_000_000, 1_000_000)
    assert owing.quote_swap("SOL", 10_000) == clean.quote_swap("SOL", 10_000)
    assert owing.swap_exact_out("USDC", 5_000)[0] == clean.swap_exact_out("USDC", 5_000)[0]
    assert owing.mid_price() == clean.mid_price()


def test_exact_out_rounds_both_steps_up_and_is_minimal() -> None:
    """swap_base_output (calculator.rs 145-201): ⌈10⁶ · 398 / (10⁶ − 398)⌉ = 399 into the
    curve (constant_product.rs 39-41), grossed up ⌈399 · 10⁶ / 997 500⌉ = 400 (fees.rs 77-90)."""
    result, after = pool().swap_exact_out("SOL", 398)
    assert (result.amount_in, result.amount_out, result.fee) == (400, 398, 1)
    assert pool().quote_swap("SOL", 399).amount_out == 397  # one unit less in: less out
    assert after == pool().swap("SOL", 400)[1]


@given(
    reserve_in=st.integers(1_000, 10**15),
    reserve_out=st.integers(1_000, 10**15),
    fraction=st.floats(0.000001, 0.9),
    creator_fee_rate=st.integers(0, 50_000),
    creator_fee_on=st.sampled_from(list(CreatorFeeOn)),
)
def test_exact_out_pays_the_output_and_one_unit_less_would_not(
    reserve_in: int, reserve_out: int, fraction: float, creator_fee_rate: int, creator_fee_on: CreatorFeeOn
) -> None:
    amount_out = max(1, int(reserve_out * fraction))
    subject = pool(
        reserve_in,
        reserve_out,
        replace(MAINNET_FEES, creator_fee_rate=creator_fee_rate),
        creator_fee_on=creator_fee_on,
    )
    exact, _ = subject.swap_exact_out("SOL", amount_out)
    if not exact.complete:
        return
    assert subject.quote_swap("SOL", exact.amount_in).amount_out >= amount_out
    assert subject.quote_swap("SOL", exact.amount_in - 1).amount_out < amount_out


def test_exact_out_beyond_the_reserve_is_incomplete() -> None:
    assert not pool().swap_exact_out("SOL", 1_000_000)[0].complete
    assert pool().swap_exact_out("SOL", 999_999)[0].complete


def test_creator_fee_on_input_splits_one_rounded_up_fee() -> None:
    """calculator.rs 108-112: ⌈1000 × 0.35 %⌉ = 4, the creator's share ⌊4 × 1000 / 3500⌋ = 1
    (fees.rs 65-75), the trade fee the rest."""
    rates = replace(MAINNET_FEES, creator_fee_rate=1000)
    swap = swap_base_input(1000, 1_000_000, 1_000_000, rates, True)
    assert swap is not None
    assert (swap.trade_fee, swap.creator_fee, swap.curve_in) == (3, 1, 996)
    assert swap.amount_out == swap.curve_out == 996 * 1_000_000 // 1_000_996


def test_creator_fee_on_output_is_rounded_up_and_owed_in_the_output_vault() -> None:
    """calculator.rs 126-131 and fees.rs 57-63: ⌈curve out × rate⌉ kept back; pool.rs 345-351."""
    rates = replace(MAINNET_FEES, creator_fee_rate=1000)
    subject = pool(rates=rates, creator_fee_on=CreatorFeeOn.ONLY_TOKEN_0)  # selling token 1: output side
    result, after = subject.swap("USDC", 100_000)
    curve_out = 99_750 * 1_000_000 // 1_099_750  # trade fee ⌈250⌉ = 250
    assert curve_out == 90_702
    assert result.amount_out == curve_out - 91  # ⌈90.702⌉
    assert after.owed_base == 91
    assert after.owed_quote == 30 + 10  # protocol ⌊250 × 0.12⌋, fund ⌊250 × 0.04⌋


def test_a_disabled_pool_fills_nothing() -> None:
    assert not pool(swap_enabled=False).quote_swap("SOL", 1000).complete
    assert not pool(swap_enabled=False).swap_exact_out("SOL", 10)[0].complete


def test_the_router_trades_a_cpmm_pool_and_its_state_round_trips() -> None:
    subject = pool(50_000_000_000_000, 7_500_000_000_000, owed_base=12, address=str(key("pool")))
    assert pool_from_state(subject.to_state()) == subject
    exact_in = plan_route([subject], "SOL", "USDC", 1_000_000_000)
    assert exact_in.amount_out == subject.quote_swap("SOL", 1_000_000_000).amount_out
    exact_out = plan_route([subject], "SOL", "USDC", 150_000_000, mode=SwapMode.EXACT_OUT)
    assert exact_out.amount_in == subject.swap_exact_out("SOL", 150_000_000)[0].amount_in
    # Beside a Meteora pool, a large order splits across both venues.
    split = plan_route([subject, meteora_sol_usdc()], "SOL", "USDC", 5_000_000_000_000)
    assert {leg.dex for leg in split.legs} == {Dex.RAYDIUM, Dex.METEORA}


# --- instructions -----------------------------------------------------------------------


def test_swap_base_input_instruction_golden() -> None:
    """lib.rs 270-284 (amount_in, minimum_amount_out); accounts swap_base_input.rs 9-73."""
    state = synthetic_state()
    payer, user_in, user_out = key("payer"), key("user in"), key("user out")
    ix = swap_base_input_instruction(state, payer, user_in, user_out, state.token_1_mint, 1_000_000, 999)
    assert ix.program_id == PROGRAM_ID
    assert ix.data[:8] == bytes([143, 190, 90, 218, 196, 30, 51, 222])
    assert ix.data[:8] == hashlib.sha256(b"global:swap_base_input").digest()[:8]
    assert ix.data[8:] == (1_000_000).to_bytes(8, "little") + (999).to_bytes(8, "little")
    authority = Pubkey.from_string("GpMZbSM2GgvTKHJirzeGfMFoaZ8UR2X7F4v8vHTvxFbL")
    assert [(m.pubkey, m.is_signer, m.is_writable) for m in ix.accounts] == [
        (payer, True, False),  # 12: Signer
        (authority, False, False),  # 15-21: seeds [AUTH_SEED]
        (state.amm_config, False, False),  # 24-25
        (state.address, False, True),  # 28-29: mut
        (user_in, False, True),  # 32-33
        (user_out, False, True),  # 36-37
        (state.token_1_vault, False, True),  # 40-44: input vault
        (state.token_0_vault, False, True),  # 47-51: output vault
        (TOKEN_2022_PROGRAM, False, False),  # 54: input token program
        (TOKEN_PROGRAM, False, False),  # 57
        (state.token_1_mint, False, False),  # 60-63
        (state.token_0_mint, False, False),  # 66-69
        (state.observation_key, False, True),  # 71-72: mut, the pool's observation_key
    ]


def test_swap_base_output_instruction_golden() -> None:
    """lib.rs 286-288 (max_amount_in, amount_out), the same `Swap` accounts."""
    state = synthetic_state()
    ix = swap_base_output_instruction(state, key("payer"), key("a"), key("b"), state.token_0_mint, 5_000, 42)
    assert ix.data == bytes([55, 217, 98, 86, 163, 74, 180, 173]) + struct.pack("<QQ", 5_000, 42)
    assert ix.data[:8] == hashlib.sha256(b"global:swap_base_output").digest()[:8]
    keys = [m.pubkey for m in ix.accounts]
    assert keys[6:8] == [state.token_0_vault, state.token_1_vault]
    assert keys[8:12] == [TOKEN_PROGRAM, TOKEN_2022_PROGRAM, state.token_0_mint, state.token_1_mint]
    with pytest.raises(ValueError):
        swap_base_output_instruction(state, key("payer"), key("a"), key("b"), key("elsewhere"), 1, 1)


def test_the_authority_pda_is_per_program() -> None:
    """lib.rs 43: seeds [b"vault_and_lp_mint_auth_seed"]; devnet's program (lib.rs 22-25)
    has its own."""
    expected, _ = Pubkey.find_program_address([b"vault_and_lp_mint_auth_seed"], PROGRAM_ID)
    assert (
        authority_address() == expected == Pubkey.from_string("GpMZbSM2GgvTKHJirzeGfMFoaZ8UR2X7F4v8vHTvxFbL")
    )
    devnet = swap_base_input_instruction(
        synthetic_state(), key("p"), key("a"), key("b"), key("mint 0"), 1, 1, program_id=DEVNET_PROGRAM_ID
    )
    assert devnet.program_id == DEVNET_PROGRAM_ID
    assert devnet.accounts[1].pubkey == authority_address(DEVNET_PROGRAM_ID) != authority_address()


def test_program_errors_map_to_our_failure_codes() -> None:
    """error.rs 4-43, numbered from 6000."""
    assert program_error(6000) == MarketErrorCode.POOL_NOT_OPEN  # NotApproved
    assert program_error(6005) == MarketErrorCode.SLIPPAGE_EXCEEDED  # ExceededSlippage
    assert program_error(6006) == MarketErrorCode.INSUFFICIENT_LIQUIDITY  # ZeroTradingTokens
    assert program_error(6012) == MarketErrorCode.INSUFFICIENT_LIQUIDITY  # InsufficientVault
    assert program_error(6008) == MarketErrorCode.POOL_NOT_FOUND  # InvalidVault
    assert program_error(2505) == MarketErrorCode.INVALID_ORDER


# --- the test node's emulation ----------------------------------------------------------


def token_account(mint: Pubkey, owner: Pubkey, amount: int) -> bytes:
    data = bytearray(ACCOUNT_LEN)
    data[0:32] = bytes(mint)
    data[32:64] = bytes(owner)
    data[64:72] = amount.to_bytes(8, "little")
    data[108] = 1  # initialized
    return bytes(data)


class Ledger:
    """The accounts a node would hold for one synthetic pool."""

    def __init__(self, state: PoolState, vault_0: int, vault_1: int, creator_fee_rate: int = 0) -> None:
        config = AmmConfig(
            state.amm_config, 255, False, 0, 2500, 120_000, 40_000, 0, key("p"), key("f"), creator_fee_rate
        )
        self.config = config
        self.accounts: dict[Pubkey, bytes] = {
            state.address: encode_pool_state(state),
            state.amm_config: encode_amm_config(config),
            state.token_0_vault: token_account(state.token_0_mint, authority_address(), vault_0),
            state.token_1_vault: token_account(state.token_1_mint, authority_address(), vault_1),
        }
        self.pool = cpmm_pool(state, config, vault_0, vault_1, "SOL", "USDC")

    def read(self, address: Pubkey) -> bytes | None:
        return self.accounts.get(address)


def test_the_emulated_swap_base_input_moves_exactly_the_quote() -> None:
    state = synthetic_state()
    ledger = Ledger(state, 40_000_000_000, 6_000_000_000)
    quote = ledger.pool.quote_swap("SOL", 1_000_000_000)
    payer = key("payer")
    ix = swap_base_input_instruction(
        state, payer, key("user sol"), key("user usdc"), state.token_0_mint, 1_000_000_000, quote.amount_out
    )

    effect = raydium_cpmm_program(
        bytes(ix.data), [m.pubkey for m in ix.accounts], ledger.read, state.open_time
    )

    assert effect.moves == (
        TokenMove(key("user sol"), state.token_0_vault, 1_000_000_000, payer),
        TokenMove(state.token_1_vault, key("user usdc"), quote.amount_out, authority_address()),
    )
    after = decode_pool_state(state.address, effect.writes[state.address])
    trade_fee = 2_500_000  # ⌈10⁹ × 0.25 %⌉
    assert after.protocol_fees_token_0 == 11 + trade_fee * 12 // 100
    assert after.fund_fees_token_0 == 13 + trade_fee * 4 // 100
    assert (after.protocol_fees_token_1, after.fund_fees_token_1) == (12, 14)


@pytest.mark.parametrize("creator_fee_on", list(CreatorFeeOn))
def test_the_emulated_landing_leaves_the_pool_the_quote_predicts(creator_fee_on: CreatorFeeOn) -> None:
    """Fees owed written back (pool.rs 326-369) and vaults moved: decoding them again
    gives the pool CpmmPool.swap predicted, creator fee included on either side."""
    state = synthetic_state(enable_creator_fee=True, creator_fee_on=int(creator_fee_on))
    ledger = Ledger(state, 40_000_000_000, 6_000_000_000, creator_fee_rate=1_000)
    quote, predicted = ledger.pool.swap("USDC", 150_000_000)
    ix = swap_base_input_instruction(
        state, key("payer"), key("a"), key("b"), state.token_1_mint, 150_000_000, quote.amount_out
    )

    effect = raydium_cpmm_program(
        bytes(ix.data), [m.pubkey for m in ix.accounts], ledger.read, state.open_time
    )

    landed = decode_pool_state(state.address, effect.writes[state.address])
    vault_0, vault_1 = 40_000_000_000 - quote.amount_out, 6_000_000_000 + 150_000_000
    assert cpmm_pool(landed, ledger.config, vault_0, vault_1, "SOL", "USDC") == predicted
    assert (
        landed.fees_owed_token_0 + landed.fees_owed_token_1
        > state.fees_owed_token_0 + state.fees_owed_token_1
    )


def test_the_emulation_fails_with_the_programs_codes() -> None:
    state = synthetic_state()
    ledger = Ledger(state, 40_000_000_000, 6_000_000_000)
    quote = ledger.pool.quote_swap("USDC", 150_000_000)

    def run(instruction_state: PoolState, minimum: int, now: int) -> None:
        ix = swap_base_input_instruction(
            instruction_state, key("payer"), key("a"), key("b"), state.token_1_mint, 150_000_000, minimum
        )
        raydium_cpmm_program(bytes(ix.data), [m.pubkey for m in ix.accounts], ledger.read, now)

    run(state, quote.amount_out, state.open_time)  # the quote itself passes
    with pytest.raises(ProgramFailure) as slipped:
        run(state, quote.amount_out + 1, state.open_time)
    assert slipped.value.code == 6005 and program_error(6005) == MarketErrorCode.SLIPPAGE_EXCEEDED
    with pytest.raises(ProgramFailure) as early:
        run(state, 0, state.open_time - 1)
    assert early.value.code == 6000
    ledger.accounts[state.address] = encode_pool_state(replace(state, status=4))
    with pytest.raises(ProgramFailure) as disabled:
        run(state, 0, state.open_time)
    assert disabled.value.code == 6000


def test_the_emulated_swap_base_output_charges_the_quote_and_honours_max_amount_in() -> None:
    state = synthetic_state()
    ledger = Ledger(state, 40_000_000_000, 6_000_000_000)
    quote, _ = ledger.pool.swap_exact_out("SOL", 150_000_000)

    def run(max_amount_in: int) -> tuple[TokenMove, ...]:
        ix = swap_base_output_instruction(
            state, key("payer"), key("a"), key("b"), state.token_0_mint, max_amount_in, 150_000_000
        )
        keys = [m.pubkey for m in ix.accounts]
        return raydium_cpmm_program(bytes(ix.data), keys, ledger.read, state.open_time).moves

    moves = run(quote.amount_in)
    assert [m.amount for m in moves] == [quote.amount_in, 150_000_000]
    with pytest.raises(ProgramFailure) as slipped:
        run(quote.amount_in - 1)
    assert slipped.value.code == 6005


def test_swap_math_refuses_what_the_program_refuses() -> None:
    assert swap_base_input(0, 10, 10, MAINNET_FEES, True) is None
    assert swap_base_input(2**64, 10**18, 10**18, MAINNET_FEES, True) is None  # amount_in is a u64
    assert swap_base_output(10, 10, 10, MAINNET_FEES, True) is None  # the whole reserve
    assert swap_base_input(10, 10, 10, CpmmFeeRates(0, 0, 0), True) is None  # fees.rs 19-22
