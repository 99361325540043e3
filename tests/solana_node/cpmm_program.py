"""Raydium CPMM's swap_base_input / swap_base_output for the test node: the program's
checks and effects (instructions/swap_base_input.rs 75-212, swap_base_output.rs 9-154)
over the node's accounts, computed with market/cpmm.py's math.

What it does not emulate: Token-2022 transfer fees, the observation (oracle) update and
`recent_epoch` (the node has no epochs), Anchor's account constraints beyond the ones a
wrong transaction of ours would trip (pool, config, vaults, authority)."""

from __future__ import annotations

import struct

from solders.pubkey import Pubkey

from market.cpmm import (
    CpmmFeeRates,
    CpmmSwap,
    CreatorFeeOn,
    creator_fee_on_input,
    swap_base_input,
    swap_base_output,
)
from onchain.raydium_cpmm import (
    EXCEEDED_SLIPPAGE,
    NOT_APPROVED,
    PROGRAM_ERROR_NAMES,
    PROGRAM_ID,
    SWAP_BASE_INPUT_DISCRIMINATOR,
    SWAP_BASE_OUTPUT_DISCRIMINATOR,
    ZERO_TRADING_TOKENS,
    NotACpmmAccount,
    authority_address,
    creator_fee_rate,
    decode_amm_config,
    decode_pool_state,
    encode_pool_state,
    with_fees_owed,
)
from onchain.spl import NotATokenAccount, decode_token_account
from tests.solana_node.programs import AccountReader, ProgramEffect, ProgramFailure, TokenMove, VenueProgram

# Anchor's framework errors (anchor-lang src/error.rs), which the `Swap` accounts'
# constraints (swap_base_input.rs 9-73) and require_gt! raise.
INSTRUCTION_FALLBACK_NOT_FOUND = 101
CONSTRAINT_RAW = 2003
CONSTRAINT_SEEDS = 2006
CONSTRAINT_ADDRESS = 2012
REQUIRE_GT_VIOLATED = 2505
ACCOUNT_DISCRIMINATOR_MISMATCH = 3002
ACCOUNT_DID_NOT_DESERIALIZE = 3003
ACCOUNT_NOT_ENOUGH_KEYS = 3005
ACCOUNT_NOT_INITIALIZED = 3012
SWAP_COMPUTE_UNITS = 40_000


def _fail(code: int) -> ProgramFailure:
    return ProgramFailure(code, PROGRAM_ERROR_NAMES.get(code, "anchor error"))


def _read(read: AccountReader, key: Pubkey) -> bytes:
    data = read(key)
    if data is None:
        raise ProgramFailure(ACCOUNT_NOT_INITIALIZED, f"account {key} not initialized")
    return data


def cpmm_program(program_id: Pubkey = PROGRAM_ID) -> VenueProgram:
    """CPMM's two swaps as the program deployed at `program_id` runs them (its authority
    PDA derives from the id: mainnet's or devnet's)."""

    def run(data: bytes, keys: list[Pubkey], read: AccountReader, now: int) -> ProgramEffect:
        return _swap(program_id, data, keys, read, now)

    return run


raydium_cpmm_program: VenueProgram = cpmm_program(PROGRAM_ID)


def _swap(
    program_id: Pubkey, data: bytes, keys: list[Pubkey], read: AccountReader, now: int
) -> ProgramEffect:
    tag = data[:8]
    if tag not in (SWAP_BASE_INPUT_DISCRIMINATOR, SWAP_BASE_OUTPUT_DISCRIMINATOR) or len(data) < 24:
        raise ProgramFailure(INSTRUCTION_FALLBACK_NOT_FOUND, "instruction not emulated")
    if len(keys) < 13:
        raise ProgramFailure(ACCOUNT_NOT_ENOUGH_KEYS, "not enough account keys")
    first, second = struct.unpack_from("<QQ", data, 8)
    (payer, authority, config_key, pool_key, user_in, user_out, vault_in_key, vault_out_key) = keys[:8]
    observation = keys[12]
    try:
        state = decode_pool_state(pool_key, _read(read, pool_key))
        config = decode_amm_config(config_key, _read(read, config_key))
    except NotACpmmAccount as error:
        raise ProgramFailure(ACCOUNT_DISCRIMINATOR_MISMATCH, str(error)) from error
    if authority != authority_address(program_id):  # swap_base_input.rs 15-20
        raise ProgramFailure(CONSTRAINT_SEEDS, "authority is not the program's PDA")
    if config_key != state.amm_config or observation != state.observation_key:  # 24, 71
        raise ProgramFailure(CONSTRAINT_ADDRESS, "amm_config or observation_state is not the pool's")
    pool_vaults = (state.token_0_vault, state.token_1_vault)
    if vault_in_key not in pool_vaults or vault_out_key not in pool_vaults:  # 40-51
        raise ProgramFailure(CONSTRAINT_RAW, "a vault is not the pool's")
    if not state.is_open(now):  # swap_base_input.rs 79-83
        raise _fail(NOT_APPROVED)
    if (vault_in_key, vault_out_key) == (state.token_0_vault, state.token_1_vault):
        zero_for_one = True
    elif (vault_in_key, vault_out_key) == (state.token_1_vault, state.token_0_vault):
        zero_for_one = False
    else:  # pool.rs 305-307
        raise _fail(6008)
    programs = (state.token_0_program, state.token_1_program)
    try:
        vault_in = decode_token_account(
            vault_in_key, programs[0 if zero_for_one else 1], _read(read, vault_in_key)
        )
        vault_out = decode_token_account(
            vault_out_key, programs[1 if zero_for_one else 0], _read(read, vault_out_key)
        )
    except NotATokenAccount as error:
        raise ProgramFailure(ACCOUNT_DID_NOT_DESERIALIZE, str(error)) from error
    owed_in, owed_out = (
        (state.fees_owed_token_0, state.fees_owed_token_1)
        if zero_for_one
        else (state.fees_owed_token_1, state.fees_owed_token_0)
    )
    reserve_in, reserve_out = vault_in.amount - owed_in, vault_out.amount - owed_out
    if reserve_in < 0 or reserve_out < 0:  # pool.rs 213-220
        raise _fail(6012)
    rates = CpmmFeeRates(
        config.trade_fee_rate, config.protocol_fee_rate, config.fund_fee_rate, creator_fee_rate(state, config)
    )
    on_input = creator_fee_on_input(CreatorFeeOn(state.creator_fee_on), zero_for_one)
    swap = _computed(tag, first, second, reserve_in, reserve_out, rates, on_input)
    after = with_fees_owed(state, swap, zero_for_one)
    return ProgramEffect(
        writes={pool_key: encode_pool_state(after)},
        moves=(
            TokenMove(user_in, vault_in_key, swap.amount_in, payer),
            TokenMove(vault_out_key, user_out, swap.amount_out, authority),
        ),
        compute_units=SWAP_COMPUTE_UNITS,
        logs=(
            f"Program log: Instruction: {'SwapBaseInput' if tag == SWAP_BASE_INPUT_DISCRIMINATOR else 'SwapBaseOutput'}",
        ),
    )


def _computed(
    tag: bytes,
    first: int,
    second: int,
    reserve_in: int,
    reserve_out: int,
    rates: CpmmFeeRates,
    on_input: bool,
) -> CpmmSwap:
    if tag == SWAP_BASE_INPUT_DISCRIMINATOR:
        amount_in, minimum_amount_out = first, second
        if amount_in == 0:  # swap_base_input.rs 89
            raise ProgramFailure(REQUIRE_GT_VIOLATED, "A require_gt expression was violated")
        swap = swap_base_input(amount_in, reserve_in, reserve_out, rates, on_input)
        if swap is None:  # swap_base_input.rs 110-120
            raise _fail(ZERO_TRADING_TOKENS)
        if swap.amount_out == 0:  # swap_base_input.rs 149
            raise ProgramFailure(REQUIRE_GT_VIOLATED, "A require_gt expression was violated")
        if swap.amount_out < minimum_amount_out:  # swap_base_input.rs 150-154
            raise _fail(EXCEEDED_SLIPPAGE)
        return swap
    max_amount_in, amount_out = first, second
    if amount_out == 0:  # swap_base_output.rs 14
        raise ProgramFailure(REQUIRE_GT_VIOLATED, "A require_gt expression was violated")
    swap = swap_base_output(amount_out, reserve_in, reserve_out, rates, on_input)
    if swap is None:  # the real program panics here (constant_product.rs 40-41)
        raise _fail(ZERO_TRADING_TOKENS)
    if swap.amount_in > max_amount_in:  # swap_base_output.rs 86-90
        raise _fail(EXCEEDED_SLIPPAGE)
    return swap
