"""onchain/chain.py's pure pieces: what a multi-hop exact-in transaction asks each hop,
what a landed transaction paid (compute budget, tip, rent) read back from its bytes and
meta, per-leg fills from the measured totals, and a failed transaction's error as our
failure code (onchain/pools.py `ChainPools.error_code`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from solders.transaction_status import (
    InstructionErrorCustom,
    InstructionErrorFieldless,
    TransactionErrorFieldless,
    TransactionErrorInstructionError,
    TransactionErrorInsufficientFundsForRent,
)

from contracts.failures import MarketErrorCode
from market.ledger import LandedLeg
from market.transactions import ComputeBudget, SwapLeg
from onchain import meteora_dlmm, raydium_cpmm
from onchain.chain import _budget_of, _rent_deposited, _signed, _tip_of, filled_legs, intermediate_minimums
from onchain.meteora_dlmm_venue import MeteoraDlmmVenue
from onchain.pools import ChainPools
from onchain.raydium_cpmm_venue import RaydiumCpmmVenue
from onchain.rpc import LandedTransaction, SolanaRpc, TokenBalance
from onchain.spl import NATIVE_MINT, TOKEN_PROGRAM
from onchain.venues_file import PoolEntry, VenueKind, VenuesFile

OWNER = Keypair()
TIPS = (Pubkey.new_unique(), Pubkey.new_unique())


# -- intermediate minimums -------------------------------------------------------------


def test_a_single_hop_keeps_its_own_minimums() -> None:
    legs = [SwapLeg("meteora", 600, 55), SwapLeg("raydium", 400, 37)]
    assert intermediate_minimums(legs) == legs


def test_an_earlier_hop_must_pay_out_at_least_what_the_next_hop_takes_shared_by_input() -> None:
    legs = [
        SwapLeg("meteora", 2_000, 1, "SOL", "USDC", hop=0),
        SwapLeg("raydium", 1_000, 1, "SOL", "USDC", hop=0),
        SwapLeg("meteora", 7_000, 1, "USDC", "PUMP", hop=1, share_bps=7_000),
        SwapLeg("raydium", 3_001, 1, "USDC", "PUMP", hop=1, share_bps=3_000),
    ]
    adjusted = intermediate_minimums(legs)
    first_hop = [leg.min_amount_out for leg in adjusted if leg.hop == 0]
    # 10 001 taken by hop 1, shared 2:1 and rounded up so the shares cover it.
    assert first_hop == [6_668, 3_334]
    assert sum(first_hop) >= 10_001
    assert adjusted[2:] == legs[2:]  # the last hop's inputs and minimums stand
    assert [replace_min(a, 1) for a in adjusted] == legs  # nothing else changes


def test_three_hops_chain_each_minimum_to_the_next_hops_input() -> None:
    legs = [
        SwapLeg("meteora", 1_000, 1, "SOL", "USDC", hop=0),
        SwapLeg("raydium", 900, 1, "USDC", "USDT", hop=1),
        SwapLeg("meteora", 850, 42, "USDT", "PUMP", hop=2),
    ]
    assert [leg.min_amount_out for leg in intermediate_minimums(legs)] == [900, 850, 42]


def test_exact_out_legs_are_left_as_planned() -> None:
    legs = [
        SwapLeg("meteora", 1_000, 900, "SOL", "USDC", hop=0, exact_out=True),
        SwapLeg("raydium", 900, 50, "USDC", "PUMP", hop=1, exact_out=True),
    ]
    assert intermediate_minimums(legs) == legs


def replace_min(leg: SwapLeg, minimum: int) -> SwapLeg:
    return SwapLeg(
        leg.dex, leg.amount_in, minimum, leg.token_in, leg.token_out, leg.hop, leg.share_bps, leg.exact_out
    )


# -- what a transaction asked and paid ----------------------------------------------------


def signed(limit: int, price: int, body: list[Instruction]) -> VersionedTransaction:
    """Built, signed and serialized as the chain sends it, then read back."""
    return VersionedTransaction.from_bytes(bytes(_signed(OWNER, Hash.new_unique(), limit, price, body)))


def pay(to: Pubkey, lamports: int) -> Instruction:
    return transfer(TransferParams(from_pubkey=OWNER.pubkey(), to_pubkey=to, lamports=lamports))


def test_the_compute_budget_is_read_back_from_the_transaction() -> None:
    tx = signed(187_345, 12_345_678_901, [pay(Pubkey.new_unique(), 1)])
    assert _budget_of(tx) == ComputeBudget(187_345, 12_345_678_901)


def test_the_compute_budget_is_found_in_any_order_among_other_instructions() -> None:
    body = [
        pay(Pubkey.new_unique(), 1),
        set_compute_unit_price(3),
        pay(Pubkey.new_unique(), 2),
        set_compute_unit_limit(1_400_000),
    ]
    message = MessageV0.try_compile(OWNER.pubkey(), body, [], Hash.new_unique())
    tx = VersionedTransaction.from_bytes(bytes(VersionedTransaction(message, [OWNER])))
    assert _budget_of(tx) == ComputeBudget(1_400_000, 3)


def test_a_transaction_without_budget_instructions_has_the_default_limit_and_no_price() -> None:
    message = MessageV0.try_compile(OWNER.pubkey(), [pay(Pubkey.new_unique(), 1)], [], Hash.new_unique())
    assert _budget_of(VersionedTransaction(message, [OWNER])) == ComputeBudget(200_000, 0)


def test_only_transfers_to_a_tip_account_count_as_the_tip() -> None:
    wrapped_sol = Pubkey.new_unique()  # wrapping SOL is a transfer too, not a tip
    tx = signed(100_000, 1, [pay(wrapped_sol, 5 * 10**8), pay(TIPS[1], 12_000)])
    assert _tip_of(tx, TIPS) == 12_000
    assert _tip_of(tx, ()) == 0
    assert _tip_of(signed(100_000, 1, [pay(wrapped_sol, 10**9)]), TIPS) == 0


def test_an_instruction_to_another_program_with_transfer_like_data_is_not_a_tip() -> None:
    lookalike = Instruction(
        Pubkey.new_unique(),
        bytes(pay(TIPS[0], 1).data[:4]) + (99_999).to_bytes(8, "little"),
        [AccountMeta(OWNER.pubkey(), True, True), AccountMeta(TIPS[0], False, True)],
    )
    assert _tip_of(signed(100_000, 1, [lookalike]), TIPS) == 0


def meta(
    keys: list[Pubkey],
    pre: list[int],
    post: list[int],
    post_tokens: list[TokenBalance],
    pre_tokens: list[TokenBalance] | None = None,
) -> LandedTransaction:
    return LandedTransaction(
        slot=10,
        error=None,
        fee=5_000,
        units_consumed=80_000,
        account_keys=tuple(keys),
        pre_balances=tuple(pre),
        post_balances=tuple(post),
        pre_token_balances=tuple(pre_tokens or ()),
        post_token_balances=tuple(post_tokens),
        logs=(),
    )


def test_rent_is_what_went_into_the_owners_token_accounts_made_and_left_open() -> None:
    owner = OWNER.pubkey()
    made, kept, wrapped, vault = (Pubkey.new_unique() for _ in range(4))
    pump, usdc = str(Pubkey.new_unique()), str(Pubkey.new_unique())
    landed = meta(
        [owner, made, kept, wrapped, vault],
        # made now; already there; wrapped SOL made and closed in it; a pool's vault.
        [10**9, 0, 2_039_280, 0, 0],
        [9 * 10**8, 2_039_280, 2_039_280, 0, 2_039_280],
        [
            TokenBalance(1, pump, str(owner), 123),
            TokenBalance(2, usdc, str(owner), 9),
            TokenBalance(4, pump, str(Pubkey.new_unique()), 5),
        ],
    )
    assert _rent_deposited(landed, owner) == 2_039_280


def test_no_new_account_means_no_rent() -> None:
    owner = OWNER.pubkey()
    account = Pubkey.new_unique()
    landed = meta(
        [owner, account], [10**9, 2_039_280], [9 * 10**8, 2_039_280], [TokenBalance(1, "m", str(owner), 1)]
    )
    assert _rent_deposited(landed, owner) == 0


# -- per-leg fills -------------------------------------------------------------------------


def test_a_split_last_hop_shares_the_measured_output_in_planned_proportions_to_the_unit() -> None:
    legs = [
        LandedLeg("meteora", 600, 300, 300, "m", "SOL", "PUMP", 0),
        LandedLeg("raydium", 400, 100, 100, "r", "SOL", "PUMP", 0),
    ]
    shared = filled_legs(legs, 1_000, 405, {}, exact_out=False)
    assert [leg.amount_out for leg in shared] == [303, 102]  # 405 × 3/4 rounded down, the rest
    assert sum(leg.amount_out for leg in shared) == 405
    assert [leg.amount_in for leg in shared] == [600, 400]
    assert [(leg.dex, leg.pool, leg.min_amount_out) for leg in shared] == [
        ("meteora", "m", 300),
        ("raydium", "r", 100),
    ]


def test_an_earlier_hop_paid_what_the_next_took_plus_what_the_owner_kept_of_it() -> None:
    # Exact-in, two hops: the second's input is its instruction's; the first paid that
    # and the 7 USDC that stayed in the owner's account.
    legs = [
        LandedLeg("meteora", 1_000, 880, 880, "m", "SOL", "USDC", 0),
        LandedLeg("raydium", 880, 50, 50, "r", "USDC", "PUMP", 1),
    ]
    filled = filled_legs(legs, 1_000, 57, {"USDC": 7, "PUMP": 57}, exact_out=False)
    assert [(leg.amount_in, leg.amount_out) for leg in filled] == [(1_000, 887), (880, 57)]


def test_an_exact_out_swaps_leg_records_what_it_spent_not_its_maximum() -> None:
    # As planned_legs reads an exact-out swap back: amount_in is the most it may take.
    legs = [LandedLeg("raydium", 1_100, 500, 0, "r", "SOL", "PUMP", 0)]
    filled = filled_legs(legs, 1_020, 500, {"PUMP": 500}, exact_out=True)
    assert (filled[0].amount_in, filled[0].amount_out) == (1_020, 500)


def test_an_exact_out_multi_hop_takes_the_intermediate_it_was_paid_less_what_was_left() -> None:
    legs = [
        LandedLeg("meteora", 1_100, 900, 0, "m", "SOL", "USDC", 0),
        LandedLeg("raydium", 950, 50, 0, "r", "USDC", "PUMP", 1),
    ]
    filled = filled_legs(legs, 1_040, 50, {"USDC": 3}, exact_out=True)
    assert [(leg.amount_in, leg.amount_out) for leg in filled] == [(1_040, 900), (897, 50)]


# -- error codes -------------------------------------------------------------------------


@pytest.fixture
async def pools() -> AsyncIterator[ChainPools]:
    venues = VenuesFile(
        {"SOL": NATIVE_MINT},
        (
            PoolEntry(VenueKind.METEORA_DLMM, Pubkey.new_unique()),
            PoolEntry(VenueKind.RAYDIUM_CPMM, Pubkey.new_unique()),
        ),
    )
    rpc = SolanaRpc("http://127.0.0.1:9")  # never asked: error codes are pure
    yield ChainPools(rpc, venues, [MeteoraDlmmVenue(), RaydiumCpmmVenue()])
    await rpc.close()


def call(program: Pubkey) -> Instruction:
    return Instruction(program, b"\x01", [AccountMeta(OWNER.pubkey(), True, True)])


# The transaction every error below points into: 0, 1 the compute budget, then these.
DLMM_AT, CPMM_AT, DEVNET_CPMM_AT, TOKEN_AT = 2, 3, 4, 5
SWAPS = signed(
    300_000,
    1,
    [
        call(meteora_dlmm.PROGRAM_ID),
        call(raydium_cpmm.PROGRAM_ID),
        call(raydium_cpmm.DEVNET_PROGRAM_ID),
        call(TOKEN_PROGRAM),
    ],
)


def custom(index: int, code: int) -> TransactionErrorInstructionError:
    return TransactionErrorInstructionError(index, InstructionErrorCustom(code))


@pytest.mark.parametrize(
    ("index", "code", "expected"),
    [
        (DLMM_AT, 6003, MarketErrorCode.SLIPPAGE_EXCEEDED),  # ExceededAmountSlippageTolerance
        (DLMM_AT, 6104, MarketErrorCode.SLIPPAGE_EXCEEDED),  # exact out: max in too low
        (DLMM_AT, 6012, MarketErrorCode.INSUFFICIENT_LIQUIDITY),
        (DLMM_AT, 6042, MarketErrorCode.POOL_NOT_OPEN),
        (DLMM_AT, 6000, MarketErrorCode.INVALID_ORDER),  # not in DLMM's table, though in CPMM's
        (CPMM_AT, 6005, MarketErrorCode.SLIPPAGE_EXCEEDED),  # ExceededSlippage
        (CPMM_AT, 6000, MarketErrorCode.POOL_NOT_OPEN),
        (CPMM_AT, 6003, MarketErrorCode.INVALID_ORDER),  # DLMM's slippage code, CPMM's InvalidInput
        (CPMM_AT, 6012, MarketErrorCode.INSUFFICIENT_LIQUIDITY),
        (DEVNET_CPMM_AT, 6005, MarketErrorCode.SLIPPAGE_EXCEEDED),  # devnet's CPMM program id
        (CPMM_AT, 2505, MarketErrorCode.INVALID_ORDER),  # Anchor's own: unknown to our tables
        (TOKEN_AT, 1, MarketErrorCode.INSUFFICIENT_FUNDS),  # SPL Token: insufficient funds
        (DLMM_AT, 1, MarketErrorCode.INSUFFICIENT_FUNDS),  # the same, from the swap's transfer
    ],
)
async def test_a_programs_custom_error_maps_by_the_program_that_raised_it(
    pools: ChainPools, index: int, code: int, expected: MarketErrorCode
) -> None:
    assert pools.error_code(custom(index, code), SWAPS) is expected


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            TransactionErrorInstructionError(DLMM_AT, InstructionErrorFieldless.ComputationalBudgetExceeded),
            MarketErrorCode.COMPUTE_BUDGET_EXCEEDED,
        ),
        (
            TransactionErrorInstructionError(CPMM_AT, InstructionErrorFieldless.ProgramFailedToComplete),
            MarketErrorCode.COMPUTE_BUDGET_EXCEEDED,
        ),
        (TransactionErrorFieldless.InsufficientFundsForFee, MarketErrorCode.INSUFFICIENT_FUNDS),
        (TransactionErrorInsufficientFundsForRent(0), MarketErrorCode.INSUFFICIENT_FUNDS),
        (TransactionErrorFieldless.BlockhashNotFound, MarketErrorCode.BLOCKHASH_EXPIRED),
        (TransactionErrorFieldless.AccountInUse, MarketErrorCode.ACCOUNT_IN_USE),
        (
            TransactionErrorInstructionError(DLMM_AT, InstructionErrorFieldless.InvalidAccountData),
            MarketErrorCode.INVALID_ORDER,
        ),
        (TransactionErrorFieldless.AccountNotFound, MarketErrorCode.INVALID_ORDER),
        ("something the node said", MarketErrorCode.INVALID_ORDER),
    ],
)
async def test_runtime_errors_map_by_name_and_anything_unknown_is_an_invalid_order(
    pools: ChainPools, error: object, expected: MarketErrorCode
) -> None:
    assert pools.error_code(error, SWAPS) is expected


async def test_without_the_transaction_a_custom_code_is_tried_on_every_venues_table(
    pools: ChainPools,
) -> None:
    assert pools.error_code(custom(0, 6005)) is MarketErrorCode.SLIPPAGE_EXCEEDED  # CPMM's only
    assert pools.error_code(custom(0, 6042)) is MarketErrorCode.POOL_NOT_OPEN  # DLMM's only
    assert pools.error_code(custom(0, 9999)) is MarketErrorCode.INVALID_ORDER


async def test_an_error_index_past_the_instructions_falls_back_to_every_table(pools: ChainPools) -> None:
    assert pools.error_code(custom(99, 6005), SWAPS) is MarketErrorCode.SLIPPAGE_EXCEEDED
