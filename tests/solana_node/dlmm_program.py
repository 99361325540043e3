"""The Meteora DLMM program as the test node runs it: swap2 and swap_exact_out2 over the
accounts the instruction names, computed with onchain/meteora_dlmm.py's quote.

Checked against the real program (tests/unit/test_meteora_dlmm_program.py, LiteSVM over
the mainnet fixtures): it pays what we quote, leaves the bins, limit orders, active bin and
volatility as `book.after(swap)` does, and answers 6003 below min_amount_out, 6104 above
max_in_amount and 6036 when the bin arrays it may walk run out (without a bitmap
extension). Not emulated: the oracle, protocol and LP fee bookkeeping (fee per token,
protocol fee in the pair), host fees, transfer hooks.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from solders.pubkey import Pubkey

from onchain.meteora_dlmm import (
    BIN_ARRAY_BITMAP_SIZE,
    EXCEEDED_AMOUNT_SLIPPAGE_TOLERANCE,
    INSUFFICIENT_IN_AMOUNT,
    PROGRAM_ID,
    SWAP2_DISCRIMINATOR,
    SWAP_EXACT_OUT2_DISCRIMINATOR,
    BinArray,
    DlmmQuote,
    LbPair,
    NotADlmmAccount,
    bin_array_index,
    bin_arrays_for_swap,
    decode_bin_array,
    decode_lb_pair,
    dlmm_book,
    quote_exact_in,
    quote_exact_out,
    transfer_fees,
    write_bin_amounts,
    write_bin_limit_orders,
    write_lb_pair_state,
)
from onchain.spl import TOKEN_2022_PROGRAM, NotATokenAccount, decode_mint, decode_token_account
from tests.solana_node.programs import AccountReader, ProgramEffect, ProgramFailure, TokenMove

# The program's errors the emulation raises (idls/dlmm.json "errors"; Anchor's own below 6000).
INVALID_TOKEN_MINT = 6010
INVALID_BIN_ARRAY = 6027
BITMAP_EXTENSION_NOT_PROVIDED = 6036  # what the program answers when the walk runs out of arrays
POOL_DISABLED = 6042
INSTRUCTION_FALLBACK_NOT_FOUND = 101
CONSTRAINT_HAS_ONE = 2001
ACCOUNT_DISCRIMINATOR_MISMATCH = 3002
ACCOUNT_NOT_ENOUGH_KEYS = 3005  # what the program answers when a bin array it needs is missing
ACCOUNT_NOT_INITIALIZED = 3012
MAIN_ACCOUNTS = 16  # swap2's accounts before the remaining ones (idls/dlmm.json)


@dataclass(frozen=True)
class DlmmProgram:
    """A `VenueProgram`. `epoch` picks the Token-2022 transfer fee; `slot` is compared
    with slot-activated pairs' activation point (the node passes only the timestamp)."""

    epoch: int = 2**63 - 1
    slot: int = 2**63 - 1

    def __call__(self, data: bytes, keys: list[Pubkey], read: AccountReader, timestamp: int) -> ProgramEffect:
        exact_out = data[:8] == SWAP_EXACT_OUT2_DISCRIMINATOR
        if data[:8] != SWAP2_DISCRIMINATOR and not exact_out:
            raise ProgramFailure(INSTRUCTION_FALLBACK_NOT_FOUND, "not swap2 or swap_exact_out2")
        first, second, (slice_count,) = (
            *struct.unpack_from("<QQ", data, 8),
            struct.unpack_from("<I", data, 24),
        )
        hook_accounts = sum(data[28 + 2 * i + 1] for i in range(slice_count))
        if len(keys) < MAIN_ACCOUNTS:
            raise ProgramFailure(ACCOUNT_NOT_ENOUGH_KEYS, "not enough accounts")
        try:
            pair = decode_lb_pair(keys[0], _read(read, keys[0]))
        except NotADlmmAccount as error:
            raise ProgramFailure(ACCOUNT_DISCRIMINATOR_MISMATCH, str(error)) from error
        (reserve_x, reserve_y, user_in, user_out, mint_x, mint_y, oracle) = keys[2:9]
        if (reserve_x, reserve_y, mint_x, mint_y, oracle) != (
            pair.reserve_x,
            pair.reserve_y,
            pair.token_x_mint,
            pair.token_y_mint,
            pair.oracle,
        ):
            raise ProgramFailure(CONSTRAINT_HAS_ONE, "accounts are not the pair's")
        if not pair.is_open(self.slot, timestamp):
            raise ProgramFailure(POOL_DISABLED, "pool disabled or not yet activated")
        swap_for_y = self._swap_for_y(pair, keys[4], keys[5], read)
        arrays = self._bin_arrays(pair, keys[MAIN_ACCOUNTS + hook_accounts :], read)
        book = dlmm_book(pair, list(arrays.values()))
        mints = (
            decode_mint(mint_x, pair.token_x_program, _read(read, mint_x)),
            decode_mint(mint_y, pair.token_y_program, _read(read, mint_y)),
        )
        fees = transfer_fees(pair, *mints, swap_for_y, self.epoch)
        if exact_out:
            quote = quote_exact_out(book, second, swap_for_y, timestamp, *fees)
        else:
            quote = quote_exact_in(book, first, swap_for_y, timestamp, *fees)
        self._check_bin_arrays(pair, arrays, swap_for_y, quote)
        if exact_out and quote.amount_in > first:
            raise ProgramFailure(INSUFFICIENT_IN_AMOUNT, f"needs {quote.amount_in} > max {first}")
        if not exact_out and quote.amount_out < second:
            raise ProgramFailure(EXCEEDED_AMOUNT_SLIPPAGE_TOLERANCE, f"out {quote.amount_out} < min {second}")
        reserve_in, reserve_out = (reserve_x, reserve_y) if swap_for_y else (reserve_y, reserve_x)
        moves = (
            TokenMove(user_in, reserve_in, quote.amount_in, keys[10]),
            # The reserves are token accounts owned by the pair, which signs for them.
            TokenMove(reserve_out, user_out, quote.swap.amount_out, pair.address),
        )
        bins_crossed = quote.swap.bins_crossed
        token_2022 = TOKEN_2022_PROGRAM in (pair.token_x_program, pair.token_y_program)
        return ProgramEffect(
            writes=self._writes(pair, arrays, read, quote),
            moves=moves,
            compute_units=40_000 + 5_500 * bins_crossed + (6_000 if token_2022 else 0),
            logs=("Program log: Instruction: " + ("SwapExactOut2" if exact_out else "Swap2"),),
        )

    @staticmethod
    def _check_bin_arrays(
        pair: LbPair, arrays: dict[Pubkey, BinArray], swap_for_y: bool, quote: DlmmQuote
    ) -> None:
        """The program walks every initialized bin array (the pair's bitmap) on the way:
        one it reaches that was not passed fails the swap; so does running out of them."""
        given = {array.index for array in arrays.values()}
        reached = bin_array_index(quote.swap.active_id)
        on_the_way = [
            index
            for index in bin_arrays_for_swap(pair, None, swap_for_y, count=2 * BIN_ARRAY_BITMAP_SIZE)
            if not quote.complete or (index >= reached if swap_for_y else index <= reached)
        ]
        if any(index not in given for index in on_the_way):
            raise ProgramFailure(ACCOUNT_NOT_ENOUGH_KEYS, "a bin array the swap reaches is missing")
        if not quote.complete:
            raise ProgramFailure(BITMAP_EXTENSION_NOT_PROVIDED, "the bin arrays run out of liquidity")

    @staticmethod
    def _swap_for_y(pair: LbPair, user_in: Pubkey, user_out: Pubkey, read: AccountReader) -> bool:
        try:  # either token program: decoding checks only that it is one
            mint_in = decode_token_account(user_in, pair.token_x_program, _read(read, user_in)).mint
            mint_out = decode_token_account(user_out, pair.token_x_program, _read(read, user_out)).mint
        except NotATokenAccount as error:
            raise ProgramFailure(INVALID_TOKEN_MINT, str(error)) from error
        mints = {pair.token_x_mint, pair.token_y_mint}
        if mint_in == mint_out or mint_in not in mints or mint_out not in mints:
            raise ProgramFailure(INVALID_TOKEN_MINT, "user token accounts are not the pair's two mints")
        return mint_in == pair.token_x_mint

    @staticmethod
    def _bin_arrays(pair: LbPair, keys: list[Pubkey], read: AccountReader) -> dict[Pubkey, BinArray]:
        arrays: dict[Pubkey, BinArray] = {}
        for key in keys:
            try:
                array = decode_bin_array(key, _read(read, key))
            except NotADlmmAccount as error:
                raise ProgramFailure(INVALID_BIN_ARRAY, str(error)) from error
            if array.lb_pair != pair.address:
                raise ProgramFailure(INVALID_BIN_ARRAY, f"{key} is another pair's bin array")
            arrays[key] = array
        return arrays

    @staticmethod
    def _writes(
        pair: LbPair, arrays: dict[Pubkey, BinArray], read: AccountReader, quote: DlmmQuote
    ) -> dict[Pubkey, bytes]:
        writes = {
            pair.address: write_lb_pair_state(
                _read(read, pair.address), quote.swap.active_id, quote.swap.volatility
            )
        }
        for key, array in arrays.items():
            ids = set(array.bin_ids())
            amounts = {i: amounts for i, amounts in quote.swap.bins.items() if i in ids}
            orders = {
                i: (processed, open_) for i, (processed, open_, _) in quote.swap.orders.items() if i in ids
            }
            if amounts or orders:
                writes[key] = write_bin_limit_orders(write_bin_amounts(_read(read, key), amounts), orders)
        return writes


def _read(read: AccountReader, key: Pubkey) -> bytes:
    data = read(key)
    if data is None:
        raise ProgramFailure(ACCOUNT_NOT_INITIALIZED, f"account {key} does not exist")
    return data


meteora_dlmm_program = DlmmProgram()
PROGRAM = PROGRAM_ID  # the id the node registers the emulation under
