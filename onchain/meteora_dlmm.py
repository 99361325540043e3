"""Meteora DLMM on the real chain: accounts, bin arrays for a swap, quotes, instructions.

Pure except for fetching, which the callers do: they pass account bytes. Layouts and
instructions are the program's IDL (MeteoraAg/dlmm-sdk idls/dlmm.json, lb_clmm 0.12.0):
zero-copy (bytemuck, repr C) accounts after Anchor's 8-byte discriminator. The swap math is
market/dlmm.py's DlmmBook, fed from real state; the walk across bin arrays and the fee are
the SDK's reference quote (dlmm-sdk commons/src/quote.rs, extensions/*.rs), which the SDK
checks against the deployed program (commons/tests/integration/test_swap*.rs).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey

from contracts.failures import MarketErrorCode
from market.dlmm import BinSwap, DlmmBook, FeeParameters, Volatility
from onchain.spl import TOKEN_2022_PROGRAM, TOKEN_PROGRAM, Mint, TransferFee, transfer_fee

PROGRAM_ID = Pubkey.from_string("LBUZKhRxPF3XUpBCjp4YzTKgLccjZhTSDM9YuVaPwxo")
# The swap instructions' memo_program (idls/dlmm.json 4150-4152: SPL Memo v2).
MEMO_PROGRAM_ID = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
# Anchor's event-CPI authority (commons/src/pda.rs 129-131; idls/dlmm.json swap2 event_authority).
EVENT_AUTHORITY = Pubkey.find_program_address([b"__event_authority"], PROGRAM_ID)[0]

BINS_PER_ARRAY = 70  # commons/src/constants.rs MAX_BIN_PER_ARRAY
BIN_ARRAY_BITMAP_SIZE = 512  # the pair's own bitmap covers bin arrays -512..511
EXTENSION_BITMAP_SIZE = 12  # the extension: 12 more words of 512 on each side
EXTENSION_MAX_INDEX = BIN_ARRAY_BITMAP_SIZE * (EXTENSION_BITMAP_SIZE + 1) - 1
EXTENSION_MIN_INDEX = -BIN_ARRAY_BITMAP_SIZE * (EXTENSION_BITMAP_SIZE + 1)


def account_discriminator(name: str) -> bytes:
    return hashlib.sha256(f"account:{name}".encode()).digest()[:8]


def instruction_discriminator(name: str) -> bytes:
    return hashlib.sha256(f"global:{name}".encode()).digest()[:8]


LB_PAIR_DISCRIMINATOR = account_discriminator("LbPair")
BIN_ARRAY_DISCRIMINATOR = account_discriminator("BinArray")
BITMAP_EXTENSION_DISCRIMINATOR = account_discriminator("BinArrayBitmapExtension")
SWAP2_DISCRIMINATOR = instruction_discriminator("swap2")
SWAP_EXACT_OUT2_DISCRIMINATOR = instruction_discriminator("swap_exact_out2")

# LbPair (idls/dlmm.json types LbPair, StaticParameters, VariableParameters), byte offsets
# in the account (discriminator included): 904 bytes.
LB_PAIR_LEN = 904
_STATIC = "<HHHHIIiiHBBB"  # base_factor .. collect_fee_mode, at 8
_VOLATILITY = "<IIi"  # volatility accumulator, reference, index reference, at 40
_LAST_UPDATE = 56  # i64
_ACTIVE_ID = 76  # i32
_BITMAP = 584  # [u64; 16]
# BinArray: index i64 at 8, version u8 at 16, lb_pair at 24, 70 bins of 144 bytes from 56.
BIN_ARRAY_LEN = 56 + BINS_PER_ARRAY * 144
_BIN_LEN = 144
BITMAP_EXTENSION_LEN = 8 + 32 + 2 * EXTENSION_BITMAP_SIZE * 64

PAIR_ENABLED = 0  # PairStatus
PERMISSION, CUSTOMIZABLE_PERMISSIONLESS = 1, 2  # PairType: these open at activation_point
ACTIVATION_BY_SLOT = 0  # ActivationType: 0 slot, 1 timestamp
LIMIT_ORDER_FUNCTION = 2  # StaticParameters.function_type: 0 undetermined, 1 mining, 2 orders


class NotADlmmAccount(ValueError):
    """Bytes that are not the DLMM account they were read as."""


@dataclass(frozen=True)
class LbPair:
    address: Pubkey
    bin_step: int
    active_id: int
    fees: FeeParameters
    volatility: Volatility
    protocol_share: int  # basis points of the fee
    min_bin_id: int
    max_bin_id: int
    function_type: int
    collect_fee_mode: int  # 0: fee on the input; 1: always in token Y
    status: int
    pair_type: int
    activation_type: int
    activation_point: int
    pre_activation_duration: int
    pre_activation_swap_address: Pubkey
    token_x_mint: Pubkey
    token_y_mint: Pubkey
    reserve_x: Pubkey
    reserve_y: Pubkey
    oracle: Pubkey
    bin_array_bitmap: int  # 1024 bits; bit k: bin array k − 512 is initialized
    reward_mints: tuple[Pubkey, Pubkey]
    token_x_program: Pubkey
    token_y_program: Pubkey
    creator: Pubkey
    version: int

    @property
    def last_update_timestamp(self) -> int:
        """When the variable fee parameters last moved (unix seconds)."""
        return int(self.volatility.last_update)

    @property
    def supports_limit_orders(self) -> bool:
        """Limit-order pairs, and undetermined ones without farming rewards (dlmm-sdk
        commons/src/extensions/lb_pair.rs 264-277)."""
        if self.function_type == LIMIT_ORDER_FUNCTION:
            return True
        return self.function_type == 0 and all(mint == Pubkey.default() for mint in self.reward_mints)

    def is_open(self, slot: int, timestamp: int) -> bool:
        """Enabled, and past its activation point when it has one (permission and
        customizable permissionless pairs; commons/src/quote.rs 385-410)."""
        if self.status != PAIR_ENABLED:
            return False
        if self.pair_type not in (PERMISSION, CUSTOMIZABLE_PERMISSIONLESS):
            return True
        now = slot if self.activation_type == ACTIVATION_BY_SLOT else timestamp
        return now >= self.activation_point

    def token_program(self, mint: Pubkey) -> Pubkey:
        return self.token_x_program if mint == self.token_x_mint else self.token_y_program


def _key(data: bytes, offset: int) -> Pubkey:
    return Pubkey(data[offset : offset + 32])


def _check(kind: str, address: Pubkey, data: bytes, discriminator: bytes, length: int) -> None:
    if len(data) < length or data[:8] != discriminator:
        raise NotADlmmAccount(f"{address} is not a DLMM {kind} ({len(data)} bytes, {data[:8].hex()})")


def decode_lb_pair(address: Pubkey, data: bytes) -> LbPair:
    _check("LbPair", address, data, LB_PAIR_DISCRIMINATOR, LB_PAIR_LEN)
    (
        base_factor,
        filter_period,
        decay_period,
        reduction_factor,
        variable_fee_control,
        max_volatility_accumulator,
        min_bin_id,
        max_bin_id,
        protocol_share,
        base_fee_power_factor,
        function_type,
        collect_fee_mode,
    ) = struct.unpack_from(_STATIC, data, 8)
    accumulator, reference, index_reference = struct.unpack_from(_VOLATILITY, data, 40)
    (last_update,) = struct.unpack_from("<q", data, _LAST_UPDATE)
    (active_id,) = struct.unpack_from("<i", data, _ACTIVE_ID)
    (bin_step,) = struct.unpack_from("<H", data, 80)
    activation_point, pre_activation_duration = struct.unpack_from("<QQ", data, 816)
    programs = []
    for flag in data[880:882]:
        if flag not in (0, 1):
            raise NotADlmmAccount(f"{address}: token program flag {flag}")
        programs.append(TOKEN_2022_PROGRAM if flag else TOKEN_PROGRAM)
    return LbPair(
        address=address,
        bin_step=bin_step,
        active_id=active_id,
        fees=FeeParameters(
            base_factor=base_factor,
            base_fee_power_factor=base_fee_power_factor,
            variable_fee_control=variable_fee_control,
            max_volatility_accumulator=max_volatility_accumulator,
            filter_period=filter_period,
            decay_period=decay_period,
            reduction_factor=reduction_factor,
        ),
        volatility=Volatility(accumulator, reference, index_reference, last_update),
        protocol_share=protocol_share,
        min_bin_id=min_bin_id,
        max_bin_id=max_bin_id,
        function_type=function_type,
        collect_fee_mode=collect_fee_mode,
        status=data[82],
        pair_type=data[75],
        activation_type=data[86],
        activation_point=activation_point,
        pre_activation_duration=pre_activation_duration,
        pre_activation_swap_address=_key(data, 752),
        token_x_mint=_key(data, 88),
        token_y_mint=_key(data, 120),
        reserve_x=_key(data, 152),
        reserve_y=_key(data, 184),
        oracle=_key(data, 552),
        bin_array_bitmap=int.from_bytes(data[_BITMAP : _BITMAP + 128], "little"),
        reward_mints=(_key(data, 264), _key(data, 264 + 144)),
        token_x_program=programs[0],
        token_y_program=programs[1],
        creator=_key(data, 848),
        version=data[882],
    )


@dataclass(frozen=True)
class Bin:
    """One bin (idls/dlmm.json type Bin, 144 bytes): market makers' amounts, its price
    (Q64.64, Y per X), and the limit orders resting in it."""

    amount_x: int
    amount_y: int
    price: int
    open_order_amount: int
    processed_order_remaining_amount: int
    limit_order_ask_side: bool


@dataclass(frozen=True)
class BinArray:
    address: Pubkey
    index: int
    version: int
    lb_pair: Pubkey
    bins: tuple[Bin, ...]

    @property
    def lower_bin_id(self) -> int:
        return self.index * BINS_PER_ARRAY

    def bin_ids(self) -> range:
        return range(self.lower_bin_id, self.lower_bin_id + BINS_PER_ARRAY)


def decode_bin_array(address: Pubkey, data: bytes) -> BinArray:
    _check("BinArray", address, data, BIN_ARRAY_DISCRIMINATOR, BIN_ARRAY_LEN)
    (index,) = struct.unpack_from("<q", data, 8)
    bins = []
    for slot in range(BINS_PER_ARRAY):
        at = 56 + slot * _BIN_LEN
        amount_x, amount_y = struct.unpack_from("<QQ", data, at)
        price = int.from_bytes(data[at + 16 : at + 32], "little")
        open_orders, _processing, processed = struct.unpack_from("<QQQ", data, at + 112)
        bins.append(Bin(amount_x, amount_y, price, open_orders, processed, bool(data[at + 140])))
    return BinArray(address, index, data[16], _key(data, 24), tuple(bins))


@dataclass(frozen=True)
class BitmapExtension:
    """Which bin arrays beyond the pair's own bitmap are initialized: bit k of `positive`
    is bin array 512 + k, bit k of `negative` is bin array −513 − k (dlmm-sdk
    commons/src/extensions/bin_array_bitmap.rs 76-109: 12 words of 512 bits each side)."""

    address: Pubkey
    lb_pair: Pubkey
    positive: int
    negative: int


def decode_bitmap_extension(address: Pubkey, data: bytes) -> BitmapExtension:
    _check("BinArrayBitmapExtension", address, data, BITMAP_EXTENSION_DISCRIMINATOR, BITMAP_EXTENSION_LEN)
    half = EXTENSION_BITMAP_SIZE * 64
    positive = int.from_bytes(data[40 : 40 + half], "little")
    negative = int.from_bytes(data[40 + half : 40 + 2 * half], "little")
    return BitmapExtension(address, _key(data, 8), positive, negative)


def bin_array_index(bin_id: int) -> int:
    """The bin array holding `bin_id`: floor division, so −1 is in array −1
    (commons/src/extensions/bin_array.rs 62-71)."""
    return bin_id // BINS_PER_ARRAY


def bin_array_address(lb_pair: Pubkey, index: int) -> Pubkey:
    """PDA of seeds b"bin_array", the pair, the index as i64 LE (commons/src/pda.rs 107-112)."""
    return Pubkey.find_program_address([b"bin_array", bytes(lb_pair), struct.pack("<q", index)], PROGRAM_ID)[
        0
    ]


def bitmap_extension_address(lb_pair: Pubkey) -> Pubkey:
    """PDA of seeds b"bitmap", the pair (commons/src/pda.rs 114-116)."""
    return Pubkey.find_program_address([b"bitmap", bytes(lb_pair)], PROGRAM_ID)[0]


def _next_in_pair_bitmap(pair: LbPair, swap_for_y: bool, start: int) -> tuple[int, bool]:
    """The next initialized bin array from `start` in the swap's direction within the pair's
    bitmap, or the first index past its edge (commons/src/extensions/lb_pair.rs 289-331)."""
    offset = start + BIN_ARRAY_BITMAP_SIZE
    if swap_for_y:
        below = pair.bin_array_bitmap & ((1 << (offset + 1)) - 1)
        if below == 0:
            return -BIN_ARRAY_BITMAP_SIZE - 1, False
        return below.bit_length() - 1 - BIN_ARRAY_BITMAP_SIZE, True
    above = pair.bin_array_bitmap >> offset
    if above == 0:
        return BIN_ARRAY_BITMAP_SIZE, False
    return start + _lowest_bit(above), True


def _next_in_extension(extension: BitmapExtension, swap_for_y: bool, start: int) -> tuple[int, bool] | None:
    """The same over the extension's range; None when nothing is left that way (the SDK's
    error: no more liquidity), or the index back inside the pair's bitmap
    (commons/src/extensions/bin_array_bitmap.rs 29-58)."""
    if not EXTENSION_MIN_INDEX <= start <= EXTENSION_MAX_INDEX:
        return None
    if start > 0:
        bit = start - BIN_ARRAY_BITMAP_SIZE
        if swap_for_y:
            below = extension.positive & ((1 << (bit + 1)) - 1)
            return (
                (BIN_ARRAY_BITMAP_SIZE + below.bit_length() - 1, True)
                if below
                else (BIN_ARRAY_BITMAP_SIZE - 1, False)
            )
        above = extension.positive >> bit
        return (start + _lowest_bit(above), True) if above else None
    bit = -BIN_ARRAY_BITMAP_SIZE - 1 - start
    if swap_for_y:  # further from zero: higher bits of `negative`
        further = extension.negative >> bit
        return (start - _lowest_bit(further), True) if further else None
    nearer = extension.negative & ((1 << (bit + 1)) - 1)
    if nearer:
        return -BIN_ARRAY_BITMAP_SIZE - 1 - (nearer.bit_length() - 1), True
    return -BIN_ARRAY_BITMAP_SIZE, False


def _lowest_bit(value: int) -> int:
    return (value & -value).bit_length() - 1


def bin_arrays_for_swap(
    pair: LbPair, extension: BitmapExtension | None, swap_for_y: bool, count: int = 3
) -> list[int]:
    """Indexes of the initialized bin arrays a swap from the active bin may cross, in swap
    order: the pair's bitmap, the extension beyond it (none without one), as the SDK's
    `get_bin_array_pubkeys_for_swap` walks them (commons/src/quote.rs 651-706)."""
    start = bin_array_index(pair.active_id)
    step = -1 if swap_for_y else 1
    found: list[int] = []
    while len(found) < count:
        if start >= BIN_ARRAY_BITMAP_SIZE or start < -BIN_ARRAY_BITMAP_SIZE:
            if extension is None:
                break
            following = _next_in_extension(extension, swap_for_y, start)
            if following is None:
                break
            index, initialized = following
        else:
            index, initialized = _next_in_pair_bitmap(pair, swap_for_y, start)
        if initialized:
            found.append(index)
            start = index + step
        else:
            start = index
    return found


def bin_arrays_around(pair: LbPair, extension: BitmapExtension | None, count: int = 3) -> list[int]:
    """Both directions' bin arrays (selling X first, then selling Y, without repeats): what
    a watcher fetches to quote either side of the pair."""
    indexes = bin_arrays_for_swap(pair, extension, True, count)
    return indexes + [i for i in bin_arrays_for_swap(pair, extension, False, count) if i not in indexes]


def dlmm_book(pair: LbPair, bin_arrays: Sequence[BinArray]) -> DlmmBook:
    """The pair's state as a DlmmBook: every bin of the given arrays (so the walk knows
    where the loaded arrays end: past them a swap is incomplete), the bins' own prices,
    limit orders when the pair takes them, the pair's fee parameters and volatility."""
    bins: dict[int, tuple[int, int]] = {}
    prices: dict[int, int] = {}
    orders: dict[int, tuple[int, int, bool]] = {}
    for array in bin_arrays:
        if array.lb_pair != pair.address:
            raise NotADlmmAccount(f"bin array {array.address} belongs to {array.lb_pair}, not {pair.address}")
        for bin_id, one in zip(array.bin_ids(), array.bins, strict=True):
            bins[bin_id] = (one.amount_x, one.amount_y)
            if one.price:
                prices[bin_id] = one.price
            if pair.supports_limit_orders and (one.open_order_amount or one.processed_order_remaining_amount):
                orders[bin_id] = (
                    one.processed_order_remaining_amount,
                    one.open_order_amount,
                    one.limit_order_ask_side,
                )
    return DlmmBook(
        bin_step=pair.bin_step,
        active_id=pair.active_id,
        bins=bins,
        fees=pair.fees,
        volatility=pair.volatility,
        prices=prices,
        limit_orders=orders,
        fee_in_y=pair.collect_fee_mode == 1,
        fees_stay_in_bins=False,
    )


@dataclass(frozen=True)
class DlmmQuote:
    """A swap as the user's token accounts see it: `amount_in` leaves the input account,
    `amount_out` arrives in the output account (Token-2022 transfer fees included);
    `swap` is the walk over the bins, in what the pool receives and sends."""

    amount_in: int
    amount_out: int
    complete: bool
    swap: BinSwap
    transfer_fee_in: int = 0
    transfer_fee_out: int = 0


def transfer_fees(
    pair: LbPair, mint_x: Mint | None, mint_y: Mint | None, swap_for_y: bool, epoch: int
) -> tuple[TransferFee | None, TransferFee | None]:
    """The input's and the output's transfer fee at `epoch` (None: SPL Token, or no fee)."""
    fee_x = transfer_fee(mint_x, epoch) if mint_x is not None else None
    fee_y = transfer_fee(mint_y, epoch) if mint_y is not None else None
    return (fee_x, fee_y) if swap_for_y else (fee_y, fee_x)


def quote_exact_in(
    book: DlmmBook,
    amount_in: int,
    swap_for_y: bool,
    now: int,
    fee_in: TransferFee | None = None,
    fee_out: TransferFee | None = None,
) -> DlmmQuote:
    """Exact in: the pool receives the input less its transfer fee; the user the output
    less its transfer fee (commons/src/quote.rs `quote_exact_in`, 542-649)."""
    skimmed_in = fee_in.fee_on(amount_in) if fee_in else 0
    walk = book.swap(amount_in - skimmed_in, swap_for_y, now)
    skimmed_out = fee_out.fee_on(walk.amount_out) if fee_out else 0
    return DlmmQuote(amount_in, walk.amount_out - skimmed_out, walk.complete, walk, skimmed_in, skimmed_out)


def quote_exact_out(
    book: DlmmBook,
    amount_out: int,
    swap_for_y: bool,
    now: int,
    fee_in: TransferFee | None = None,
    fee_out: TransferFee | None = None,
) -> DlmmQuote:
    """Exact out: the pool must send enough that `amount_out` arrives after the output's
    transfer fee; the user sends enough that the pool receives what the walk needs
    (commons/src/quote.rs `quote_exact_out`, 434-540)."""
    pool_out = fee_out.amount_before_fee(amount_out) if fee_out else amount_out
    walk = book.swap_exact_out(pool_out, swap_for_y, now)
    amount_in = fee_in.amount_before_fee(walk.amount_in) if fee_in else walk.amount_in
    return DlmmQuote(
        amount_in,
        amount_out if walk.complete else walk.amount_out,
        walk.complete,
        walk,
        amount_in - walk.amount_in,
        pool_out - amount_out,
    )


def _swap_accounts(
    pair: LbPair,
    user: Pubkey,
    user_token_in: Pubkey,
    user_token_out: Pubkey,
    bin_arrays: Sequence[Pubkey],
    bitmap_extension: Pubkey | None,
    host_fee_in: Pubkey | None,
) -> list[AccountMeta]:
    """swap2 / swap_exact_out2 accounts in the program's order (idls/dlmm.json lines
    4089-4189 and 4281-4381; the struct is Swap2 in dlmm-sdk
    programs/lb_clmm/src/instructions/v2/swap2.rs 13-61 at b65bd20). An absent optional
    account is the program id, read-only (Anchor's convention; the CLI passes it so,
    cli/src/instructions/swap_exact_in.rs). The bin arrays follow, writable."""

    def optional(key: Pubkey | None) -> AccountMeta:
        return AccountMeta(key, False, True) if key is not None else AccountMeta(PROGRAM_ID, False, False)

    return [
        AccountMeta(pair.address, False, True),
        optional(bitmap_extension),
        AccountMeta(pair.reserve_x, False, True),
        AccountMeta(pair.reserve_y, False, True),
        AccountMeta(user_token_in, False, True),
        AccountMeta(user_token_out, False, True),
        AccountMeta(pair.token_x_mint, False, False),
        AccountMeta(pair.token_y_mint, False, False),
        AccountMeta(pair.oracle, False, True),
        optional(host_fee_in),
        AccountMeta(user, True, False),
        AccountMeta(pair.token_x_program, False, False),
        AccountMeta(pair.token_y_program, False, False),
        AccountMeta(MEMO_PROGRAM_ID, False, False),
        AccountMeta(EVENT_AUTHORITY, False, False),
        AccountMeta(PROGRAM_ID, False, False),
        *(AccountMeta(key, False, True) for key in bin_arrays),
    ]


def _remaining_accounts_info(slices: Sequence[tuple[int, int]]) -> bytes:
    """RemainingAccountsInfo { slices: Vec<{accounts_type: AccountsType, length: u8}> }
    in Borsh: u32 count, then each slice's enum variant (u8) and length (u8). Only the
    field-less variants (transfer-hook X = 0, Y = 1, ...)."""
    return struct.pack("<I", len(slices)) + b"".join(
        struct.pack("<BB", kind, length) for kind, length in slices
    )


def swap2_instruction(
    pair: LbPair,
    user: Pubkey,
    user_token_in: Pubkey,
    user_token_out: Pubkey,
    amount_in: int,
    min_amount_out: int,
    bin_arrays: Sequence[Pubkey],
    bitmap_extension: Pubkey | None = None,
    host_fee_in: Pubkey | None = None,
    remaining_accounts_info: Sequence[tuple[int, int]] = (),
) -> Instruction:
    """swap2(amount_in u64, min_amount_out u64, remaining_accounts_info)."""
    return _swap_instruction(
        SWAP2_DISCRIMINATOR,
        (amount_in, min_amount_out),
        pair,
        user,
        user_token_in,
        user_token_out,
        bin_arrays,
        bitmap_extension,
        host_fee_in,
        remaining_accounts_info,
    )


def swap_exact_out2_instruction(
    pair: LbPair,
    user: Pubkey,
    user_token_in: Pubkey,
    user_token_out: Pubkey,
    max_in_amount: int,
    out_amount: int,
    bin_arrays: Sequence[Pubkey],
    bitmap_extension: Pubkey | None = None,
    host_fee_in: Pubkey | None = None,
    remaining_accounts_info: Sequence[tuple[int, int]] = (),
) -> Instruction:
    """swap_exact_out2(max_in_amount u64, out_amount u64, remaining_accounts_info)."""
    return _swap_instruction(
        SWAP_EXACT_OUT2_DISCRIMINATOR,
        (max_in_amount, out_amount),
        pair,
        user,
        user_token_in,
        user_token_out,
        bin_arrays,
        bitmap_extension,
        host_fee_in,
        remaining_accounts_info,
    )


def _swap_instruction(
    discriminator: bytes,
    amounts: tuple[int, int],
    pair: LbPair,
    user: Pubkey,
    user_token_in: Pubkey,
    user_token_out: Pubkey,
    bin_arrays: Sequence[Pubkey],
    bitmap_extension: Pubkey | None,
    host_fee_in: Pubkey | None,
    remaining_accounts_info: Sequence[tuple[int, int]],
) -> Instruction:
    """Both swaps take the same accounts and two u64 amounts, then the slices."""
    data = discriminator + struct.pack("<QQ", *amounts) + _remaining_accounts_info(remaining_accounts_info)
    accounts = _swap_accounts(
        pair, user, user_token_in, user_token_out, bin_arrays, bitmap_extension, host_fee_in
    )
    return Instruction(PROGRAM_ID, data, accounts)


# The program's custom errors (6000 + the index in LBError; idls/dlmm.json 5221-5777).
# Run on the real program (tests/unit/test_meteora_dlmm_program.py): min_amount_out not
# met answers 6003, max_in_amount not enough 6104, bin arrays run out 6036.
EXCEEDED_AMOUNT_SLIPPAGE_TOLERANCE = 6003
PAIR_INSUFFICIENT_LIQUIDITY = 6012
INSUFFICIENT_IN_AMOUNT = 6104
POOL_DISABLED = 6042
PROGRAM_ERRORS: dict[int, MarketErrorCode] = {
    EXCEEDED_AMOUNT_SLIPPAGE_TOLERANCE: MarketErrorCode.SLIPPAGE_EXCEEDED,
    6004: MarketErrorCode.SLIPPAGE_EXCEEDED,  # ExceededBinSlippageTolerance
    6039: MarketErrorCode.SLIPPAGE_EXCEEDED,  # InsufficientOutAmount
    INSUFFICIENT_IN_AMOUNT: MarketErrorCode.SLIPPAGE_EXCEEDED,  # exact out: max_in_amount too low
    6007: MarketErrorCode.INSUFFICIENT_LIQUIDITY,  # ZeroLiquidity
    6009: MarketErrorCode.INSUFFICIENT_LIQUIDITY,  # BinArrayNotFound
    PAIR_INSUFFICIENT_LIQUIDITY: MarketErrorCode.INSUFFICIENT_LIQUIDITY,
    6027: MarketErrorCode.INSUFFICIENT_LIQUIDITY,  # InvalidBinArray
    6028: MarketErrorCode.INSUFFICIENT_LIQUIDITY,  # NonContinuousBinArrays
    6036: MarketErrorCode.INSUFFICIENT_LIQUIDITY,  # BitmapExtensionAccountIsNotProvided
    6037: MarketErrorCode.INSUFFICIENT_LIQUIDITY,  # CannotFindNonZeroLiquidityBinArrayId
    6038: MarketErrorCode.INSUFFICIENT_LIQUIDITY,  # BinIdOutOfBound
    6057: MarketErrorCode.INSUFFICIENT_LIQUIDITY,  # NotExactAmountOut
    # UndeterminedError: seen on the real binary when an exact-out swap reaches limit
    # orders in an older bin array (test_meteora_dlmm_program.py); a bin it cannot fill.
    6085: MarketErrorCode.INSUFFICIENT_LIQUIDITY,
    POOL_DISABLED: MarketErrorCode.POOL_NOT_OPEN,
    6048: MarketErrorCode.POOL_NOT_OPEN,  # UnauthorizedAddress: before activation
    6053: MarketErrorCode.POOL_NOT_OPEN,  # ExceedMaxSwappedAmount: a launch's opening cap
}


def program_error(code: int) -> MarketErrorCode:
    """Our failure code for the program's custom error: anything not mapped (a wrong
    mint, an unsupported extension, overflow) refuses the order as given."""
    return PROGRAM_ERRORS.get(code, MarketErrorCode.INVALID_ORDER)


def write_bin_amounts(data: bytes, amounts: dict[int, tuple[int, int]]) -> bytes:
    """Bin array bytes with the given bins' (amount_x, amount_y) replaced."""
    array = bytearray(data)
    for bin_id, (amount_x, amount_y) in amounts.items():
        struct.pack_into("<QQ", array, _bin_offset(data, bin_id), amount_x, amount_y)
    return bytes(array)


def write_bin_limit_orders(data: bytes, orders: dict[int, tuple[int, int]]) -> bytes:
    """Bin array bytes with the given bins' (processed remaining, open) limit orders replaced."""
    array = bytearray(data)
    for bin_id, (processed, open_orders) in orders.items():
        at = _bin_offset(data, bin_id)
        struct.pack_into("<Q", array, at + 112, open_orders)
        struct.pack_into("<Q", array, at + 128, processed)
    return bytes(array)


def _bin_offset(data: bytes, bin_id: int) -> int:
    index: int = struct.unpack_from("<q", data, 8)[0]
    slot = bin_id - index * BINS_PER_ARRAY
    if not 0 <= slot < BINS_PER_ARRAY:
        raise ValueError(f"bin {bin_id} is not in bin array {index}")
    return 56 + slot * _BIN_LEN


def write_lb_pair_state(data: bytes, active_id: int, volatility: Volatility) -> bytes:
    """LbPair bytes with the active bin and the variable fee parameters replaced."""
    pair = bytearray(data)
    struct.pack_into(
        _VOLATILITY, pair, 40, volatility.accumulator, volatility.reference, volatility.index_reference
    )
    struct.pack_into("<q", pair, _LAST_UPDATE, int(volatility.last_update))
    struct.pack_into("<i", pair, _ACTIVE_ID, active_id)
    return bytes(pair)
