"""Raydium CPMM (program CPMMoo8L3F4NbTegBCKVNunggL7H1ZpdTHKxQB5qKP1C; devnet
DRaycpLY18LhpbydsBWbVJtxpNv9oXPgjRSfpF2bWpYb): its accounts, its swap instructions and its
errors. Pure: callers fetch the account bytes.

Written from github raydium-io/raydium-cp-swap, programs/cp-swap/src (commit 609780f):
states/config.rs 6-35 (AmmConfig), states/pool.rs 63-132 (PoolState), lib.rs 22-25 (ids),
43 (AUTH_SEED), 270-288 (the swap entry points), instructions/swap_base_input.rs 9-73 (the
accounts), 75-212 and swap_base_output.rs 9-154 (what a swap checks), error.rs 4-43.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, replace

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey

from contracts.failures import MarketErrorCode
from core.domain import Dex
from market.cpmm import CpmmFeeRates, CpmmPool, CpmmSwap, CreatorFeeOn

PROGRAM_ID = Pubkey.from_string("CPMMoo8L3F4NbTegBCKVNunggL7H1ZpdTHKxQB5qKP1C")
DEVNET_PROGRAM_ID = Pubkey.from_string("DRaycpLY18LhpbydsBWbVJtxpNv9oXPgjRSfpF2bWpYb")
AUTH_SEED = b"vault_and_lp_mint_auth_seed"  # lib.rs 43


def anchor_discriminator(namespace: str, name: str) -> bytes:
    """Anchor's 8-byte tag: sha256("account:<Name>") for accounts, ("global:<name>") for
    instructions."""
    return hashlib.sha256(f"{namespace}:{name}".encode()).digest()[:8]


AMM_CONFIG_DISCRIMINATOR = anchor_discriminator("account", "AmmConfig")
POOL_STATE_DISCRIMINATOR = anchor_discriminator("account", "PoolState")
SWAP_BASE_INPUT_DISCRIMINATOR = anchor_discriminator("global", "swap_base_input")
SWAP_BASE_OUTPUT_DISCRIMINATOR = anchor_discriminator("global", "swap_base_output")

# Borsh, no alignment (config.rs 6-31): discriminator, bump u8, disable_create_pool bool,
# index u16, trade/protocol/fund fee rates and create_pool_fee u64, protocol and fund
# owners, creator_fee_rate u64, padding [u64; 15].
_AMM_CONFIG = struct.Struct("<8sBBH4Q32s32sQ15Q")
AMM_CONFIG_LEN = 8 + 1 + 1 + 2 + 4 * 8 + 32 * 2 + 8 + 8 * 15  # config.rs 34
# repr(C, packed) zero-copy (pool.rs 63-129): discriminator, ten pubkeys, auth_bump,
# status, lp_mint_decimals, mint_0/1_decimals, lp_supply, protocol_fees_token_0/1,
# fund_fees_token_0/1, open_time, recent_epoch, creator_fee_on u8, enable_creator_fee bool,
# padding1 [u8; 6], creator_fees_token_0/1, padding [u64; 28].
_POOL_STATE = struct.Struct("<8s" + "32s" * 10 + "5B7Q2B6s2Q28Q")
POOL_STATE_LEN = 8 + 10 * 32 + 1 * 5 + 8 * 7 + 1 * 2 + 6 * 1 + 2 * 8 + 8 * 28  # pool.rs 132

SWAP_DISABLED_BIT = 1 << 2  # pool.rs 93-97 (status bit 2), 12-16 (PoolStatusBitIndex::Swap)


class NotACpmmAccount(ValueError):
    """Bytes that are not the CPMM account they were read as."""


@dataclass(frozen=True)
class AmmConfig:
    address: Pubkey
    bump: int
    disable_create_pool: bool
    index: int
    trade_fee_rate: int  # millionths
    protocol_fee_rate: int  # millionths of the trade fee
    fund_fee_rate: int  # millionths of the trade fee
    create_pool_fee: int  # lamports
    protocol_owner: Pubkey
    fund_owner: Pubkey
    creator_fee_rate: int  # millionths
    padding: tuple[int, ...] = (0,) * 15


@dataclass(frozen=True)
class PoolState:
    address: Pubkey
    amm_config: Pubkey
    pool_creator: Pubkey
    token_0_vault: Pubkey
    token_1_vault: Pubkey
    lp_mint: Pubkey
    token_0_mint: Pubkey
    token_1_mint: Pubkey
    token_0_program: Pubkey
    token_1_program: Pubkey
    observation_key: Pubkey
    auth_bump: int
    status: int  # bit 0: deposit disabled, 1: withdraw disabled, 2: swap disabled
    lp_mint_decimals: int
    mint_0_decimals: int
    mint_1_decimals: int
    lp_supply: int
    protocol_fees_token_0: int
    protocol_fees_token_1: int
    fund_fees_token_0: int
    fund_fees_token_1: int
    open_time: int  # unix seconds: swaps before it fail with NotApproved
    recent_epoch: int
    creator_fee_on: int  # CreatorFeeOn
    enable_creator_fee: bool
    creator_fees_token_0: int
    creator_fees_token_1: int
    padding1: bytes = bytes(6)
    padding: tuple[int, ...] = (0,) * 28

    @property
    def swap_enabled(self) -> bool:
        return not self.status & SWAP_DISABLED_BIT

    def is_open(self, now: int) -> bool:
        """Whether a swap at cluster time `now` passes the program's first check
        (swap_base_input.rs 79-83, swap_base_output.rs 18-22)."""
        return self.swap_enabled and now >= self.open_time

    @property
    def fees_owed_token_0(self) -> int:
        return self.protocol_fees_token_0 + self.fund_fees_token_0 + self.creator_fees_token_0

    @property
    def fees_owed_token_1(self) -> int:
        return self.protocol_fees_token_1 + self.fund_fees_token_1 + self.creator_fees_token_1


def decode_amm_config(address: Pubkey, data: bytes) -> AmmConfig:
    if len(data) < AMM_CONFIG_LEN or data[:8] != AMM_CONFIG_DISCRIMINATOR:
        raise NotACpmmAccount(f"{address} is not a Raydium CPMM AmmConfig")
    fields = _AMM_CONFIG.unpack_from(data)
    return AmmConfig(
        address,
        bump=fields[1],
        disable_create_pool=_bool(fields[2], address),
        index=fields[3],
        trade_fee_rate=fields[4],
        protocol_fee_rate=fields[5],
        fund_fee_rate=fields[6],
        create_pool_fee=fields[7],
        protocol_owner=Pubkey(fields[8]),
        fund_owner=Pubkey(fields[9]),
        creator_fee_rate=fields[10],
        padding=tuple(fields[11:]),
    )


def encode_amm_config(config: AmmConfig) -> bytes:
    return _AMM_CONFIG.pack(
        AMM_CONFIG_DISCRIMINATOR,
        config.bump,
        int(config.disable_create_pool),
        config.index,
        config.trade_fee_rate,
        config.protocol_fee_rate,
        config.fund_fee_rate,
        config.create_pool_fee,
        bytes(config.protocol_owner),
        bytes(config.fund_owner),
        config.creator_fee_rate,
        *config.padding,
    )


def decode_pool_state(address: Pubkey, data: bytes) -> PoolState:
    if len(data) < POOL_STATE_LEN or data[:8] != POOL_STATE_DISCRIMINATOR:
        raise NotACpmmAccount(f"{address} is not a Raydium CPMM PoolState")
    f = _POOL_STATE.unpack_from(data)
    return PoolState(
        address,
        amm_config=Pubkey(f[1]),
        pool_creator=Pubkey(f[2]),
        token_0_vault=Pubkey(f[3]),
        token_1_vault=Pubkey(f[4]),
        lp_mint=Pubkey(f[5]),
        token_0_mint=Pubkey(f[6]),
        token_1_mint=Pubkey(f[7]),
        token_0_program=Pubkey(f[8]),
        token_1_program=Pubkey(f[9]),
        observation_key=Pubkey(f[10]),
        auth_bump=f[11],
        status=f[12],
        lp_mint_decimals=f[13],
        mint_0_decimals=f[14],
        mint_1_decimals=f[15],
        lp_supply=f[16],
        protocol_fees_token_0=f[17],
        protocol_fees_token_1=f[18],
        fund_fees_token_0=f[19],
        fund_fees_token_1=f[20],
        open_time=f[21],
        recent_epoch=f[22],
        creator_fee_on=f[23],
        enable_creator_fee=_bool(f[24], address),
        padding1=f[25],
        creator_fees_token_0=f[26],
        creator_fees_token_1=f[27],
        padding=tuple(f[28:]),
    )


def encode_pool_state(state: PoolState) -> bytes:
    return _POOL_STATE.pack(
        POOL_STATE_DISCRIMINATOR,
        *(
            bytes(k)
            for k in (
                state.amm_config,
                state.pool_creator,
                state.token_0_vault,
                state.token_1_vault,
                state.lp_mint,
                state.token_0_mint,
                state.token_1_mint,
                state.token_0_program,
                state.token_1_program,
                state.observation_key,
            )
        ),
        state.auth_bump,
        state.status,
        state.lp_mint_decimals,
        state.mint_0_decimals,
        state.mint_1_decimals,
        state.lp_supply,
        state.protocol_fees_token_0,
        state.protocol_fees_token_1,
        state.fund_fees_token_0,
        state.fund_fees_token_1,
        state.open_time,
        state.recent_epoch,
        state.creator_fee_on,
        int(state.enable_creator_fee),
        state.padding1,
        state.creator_fees_token_0,
        state.creator_fees_token_1,
        *state.padding,
    )


def _bool(value: int, address: Pubkey) -> bool:
    if value not in (0, 1):
        raise NotACpmmAccount(f"{address}: {value} is not a bool")
    return value == 1


def authority_address(program_id: Pubkey = PROGRAM_ID) -> Pubkey:
    """The PDA that owns the vaults and signs what they pay out (swap_base_input.rs 14-21)."""
    address, _ = Pubkey.find_program_address([AUTH_SEED], program_id)
    return address


def amm_config_address(index: int, program_id: Pubkey = PROGRAM_ID) -> Pubkey:
    """Seeds "amm_config" and the index as big-endian u16 (admin/create_config.rs 19-22)."""
    address, _ = Pubkey.find_program_address([b"amm_config", index.to_bytes(2, "big")], program_id)
    return address


def observation_address(pool: Pubkey, program_id: Pubkey = PROGRAM_ID) -> Pubkey:
    """Seeds "observation" and the pool (initialize.rs 140-144). A swap passes the pool's
    recorded `observation_key` (swap_base_input.rs 71), which is this for pools the
    program created."""
    address, _ = Pubkey.find_program_address([b"observation", bytes(pool)], program_id)
    return address


def vault_address(pool: Pubkey, mint: Pubkey, program_id: Pubkey = PROGRAM_ID) -> Pubkey:
    """Seeds "pool_vault", the pool and the mint (initialize.rs 109-126)."""
    address, _ = Pubkey.find_program_address([b"pool_vault", bytes(pool), bytes(mint)], program_id)
    return address


def creator_fee_rate(state: PoolState, config: AmmConfig) -> int:
    """The rate the pool charges: the config's, if the pool enables it (pool.rs 318-324)."""
    return config.creator_fee_rate if state.enable_creator_fee else 0


def cpmm_pool(
    state: PoolState,
    config: AmmConfig,
    vault_0_amount: int,
    vault_1_amount: int,
    symbol_0: str,
    symbol_1: str,
) -> CpmmPool:
    """The pool as the router trades it: token 0 is the base. `vault_*_amount` are the
    vaults' token balances; the fees owed in them do not trade."""
    if config.address != state.amm_config:
        raise NotACpmmAccount(f"{config.address} is not the config of pool {state.address}")
    return CpmmPool(
        dex=Dex.RAYDIUM,
        base=symbol_0,
        quote=symbol_1,
        vault_base=vault_0_amount,
        vault_quote=vault_1_amount,
        rates=CpmmFeeRates(
            config.trade_fee_rate,
            config.protocol_fee_rate,
            config.fund_fee_rate,
            creator_fee_rate(state, config),
        ),
        base_decimals=state.mint_0_decimals,
        quote_decimals=state.mint_1_decimals,
        owed_base=state.fees_owed_token_0,
        owed_quote=state.fees_owed_token_1,
        creator_fee_on=CreatorFeeOn(state.creator_fee_on),
        swap_enabled=state.swap_enabled,
        opens_at=float(state.open_time),
        address=str(state.address),
    )


def with_fees_owed(state: PoolState, swap: CpmmSwap, zero_for_one: bool) -> PoolState:
    """The pool state once `swap` landed: its fees added to what the pool owes
    (pool.rs 326-369), protocol and fund fees in the input token, the creator fee on its
    side."""
    creator_fee_on_token_0 = swap.creator_fee_on_input == zero_for_one
    if zero_for_one:
        state = replace(
            state,
            protocol_fees_token_0=state.protocol_fees_token_0 + swap.protocol_fee,
            fund_fees_token_0=state.fund_fees_token_0 + swap.fund_fee,
        )
    else:
        state = replace(
            state,
            protocol_fees_token_1=state.protocol_fees_token_1 + swap.protocol_fee,
            fund_fees_token_1=state.fund_fees_token_1 + swap.fund_fee,
        )
    if creator_fee_on_token_0:
        return replace(state, creator_fees_token_0=state.creator_fees_token_0 + swap.creator_fee)
    return replace(state, creator_fees_token_1=state.creator_fees_token_1 + swap.creator_fee)


def _swap_instruction(
    discriminator: bytes,
    first: int,
    second: int,
    state: PoolState,
    payer: Pubkey,
    input_token_account: Pubkey,
    output_token_account: Pubkey,
    input_mint: Pubkey,
    program_id: Pubkey,
) -> Instruction:
    if input_mint == state.token_0_mint:
        vaults = (state.token_0_vault, state.token_1_vault)
        programs = (state.token_0_program, state.token_1_program)
        mints = (state.token_0_mint, state.token_1_mint)
    elif input_mint == state.token_1_mint:
        vaults = (state.token_1_vault, state.token_0_vault)
        programs = (state.token_1_program, state.token_0_program)
        mints = (state.token_1_mint, state.token_0_mint)
    else:
        raise ValueError(f"{input_mint} is not traded in pool {state.address}")
    # The `Swap` accounts in declaration order (swap_base_input.rs 9-73); `mut` ones are
    # writable, the payer signs.
    accounts = [
        AccountMeta(payer, is_signer=True, is_writable=False),
        AccountMeta(authority_address(program_id), is_signer=False, is_writable=False),
        AccountMeta(state.amm_config, is_signer=False, is_writable=False),
        AccountMeta(state.address, is_signer=False, is_writable=True),
        AccountMeta(input_token_account, is_signer=False, is_writable=True),
        AccountMeta(output_token_account, is_signer=False, is_writable=True),
        AccountMeta(vaults[0], is_signer=False, is_writable=True),
        AccountMeta(vaults[1], is_signer=False, is_writable=True),
        AccountMeta(programs[0], is_signer=False, is_writable=False),
        AccountMeta(programs[1], is_signer=False, is_writable=False),
        AccountMeta(mints[0], is_signer=False, is_writable=False),
        AccountMeta(mints[1], is_signer=False, is_writable=False),
        AccountMeta(state.observation_key, is_signer=False, is_writable=True),
    ]
    return Instruction(program_id, discriminator + struct.pack("<QQ", first, second), accounts)


def swap_base_input_instruction(
    state: PoolState,
    payer: Pubkey,
    input_token_account: Pubkey,
    output_token_account: Pubkey,
    input_mint: Pubkey,
    amount_in: int,
    minimum_amount_out: int,
    program_id: Pubkey = PROGRAM_ID,
) -> Instruction:
    """Sell exactly `amount_in` of `input_mint`; the program fails (ExceededSlippage)
    below `minimum_amount_out` (lib.rs 270-284)."""
    return _swap_instruction(
        SWAP_BASE_INPUT_DISCRIMINATOR,
        amount_in,
        minimum_amount_out,
        state,
        payer,
        input_token_account,
        output_token_account,
        input_mint,
        program_id,
    )


def swap_base_output_instruction(
    state: PoolState,
    payer: Pubkey,
    input_token_account: Pubkey,
    output_token_account: Pubkey,
    input_mint: Pubkey,
    max_amount_in: int,
    amount_out: int,
    program_id: Pubkey = PROGRAM_ID,
) -> Instruction:
    """Buy exactly `amount_out`; the program fails (ExceededSlippage) above
    `max_amount_in` (lib.rs 286-288)."""
    return _swap_instruction(
        SWAP_BASE_OUTPUT_DISCRIMINATOR,
        max_amount_in,
        amount_out,
        state,
        payer,
        input_token_account,
        output_token_account,
        input_mint,
        program_id,
    )


# error.rs 4-43: Anchor numbers a program's errors from 6000 in declaration order.
NOT_APPROVED = 6000
EXCEEDED_SLIPPAGE = 6005
ZERO_TRADING_TOKENS = 6006
PROGRAM_ERROR_NAMES: dict[int, str] = {
    6000: "NotApproved",
    6001: "InvalidOwner",
    6002: "EmptySupply",
    6003: "InvalidInput",
    6004: "IncorrectLpMint",
    6005: "ExceededSlippage",
    6006: "ZeroTradingTokens",
    6007: "NotSupportMint",
    6008: "InvalidVault",
    6009: "InitLpAmountTooLess",
    6010: "TransferFeeCalculateNotMatch",
    6011: "MathOverflow",
    6012: "InsufficientVault",
    6013: "InvalidFeeModel",
    6014: "NoFeeCollect",
}
PROGRAM_ERRORS: dict[int, MarketErrorCode] = {
    6000: MarketErrorCode.POOL_NOT_OPEN,  # swaps disabled, or before open_time
    6001: MarketErrorCode.POOL_NOT_FOUND,  # the accounts are not this pool's
    6002: MarketErrorCode.INSUFFICIENT_LIQUIDITY,
    6003: MarketErrorCode.INVALID_ORDER,
    6004: MarketErrorCode.POOL_NOT_FOUND,
    6005: MarketErrorCode.SLIPPAGE_EXCEEDED,
    6006: MarketErrorCode.INSUFFICIENT_LIQUIDITY,
    6007: MarketErrorCode.INVALID_ORDER,  # a Token-2022 extension the pool refuses
    6008: MarketErrorCode.POOL_NOT_FOUND,  # vaults that are not the pool's
    6009: MarketErrorCode.INVALID_ORDER,
    6010: MarketErrorCode.INVALID_ORDER,
    6011: MarketErrorCode.INSUFFICIENT_LIQUIDITY,  # an amount beyond what the curve holds
    6012: MarketErrorCode.INSUFFICIENT_LIQUIDITY,  # vaults hold less than the fees owed
    6013: MarketErrorCode.INVALID_ORDER,
    6014: MarketErrorCode.INVALID_ORDER,
}


def program_error(code: int) -> MarketErrorCode:
    """Our failure code for the program's `Custom(code)`. Anchor's own codes (below 6000,
    e.g. 2505 when a swap would pay nothing: swap_base_input.rs 149) and unknown ones are
    an order the program refuses."""
    return PROGRAM_ERRORS.get(code, MarketErrorCode.INVALID_ORDER)
