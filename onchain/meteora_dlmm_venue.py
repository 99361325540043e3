"""Meteora DLMM as a venue of the real chain: the pair, its bitmap extension and the bin
arrays around the active bin decoded into the router's `DlmmPool` (the simulated
market's bin walk, fed from real state, with Token-2022 transfer fees), and its
`swap2` / `swap_exact_out2` instructions (onchain/meteora_dlmm.py has the layouts)."""

from __future__ import annotations

import struct

from solders.instruction import Instruction
from solders.pubkey import Pubkey

from contracts.failures import MarketErrorCode
from core.domain import Dex
from market.pools import DlmmPool
from market.transactions import SwapLeg
from onchain import meteora_dlmm
from onchain.pools import ClusterClock, DecodedLeg, PoolLoadError, PoolSnapshot, TokenBook
from onchain.rpc import AccountData
from onchain.spl import associated_token_address, transfer_fee, unsupported_extensions
from onchain.venues_file import PoolEntry, VenueKind

# Bin arrays fetched on each side of the active bin: 3 × 70 bins a side is far beyond
# what an order the engine accepts moves on a pool worth routing through.
ARRAYS_EACH_WAY = 3
SLOT_S = 0.4


class MeteoraDlmmVenue:
    kind = VenueKind.METEORA_DLMM
    program_ids = frozenset({meteora_dlmm.PROGRAM_ID})  # the same id on devnet

    def dependencies(self, address: Pubkey, data: bytes) -> list[Pubkey]:
        pair = meteora_dlmm.decode_lb_pair(address, data)
        arrays = meteora_dlmm.bin_arrays_around(pair, None, ARRAYS_EACH_WAY)
        return [
            meteora_dlmm.bitmap_extension_address(address),
            *(meteora_dlmm.bin_array_address(address, index) for index in arrays),
        ]

    def snapshot(
        self,
        entry: PoolEntry,
        program: Pubkey,
        data: bytes,
        accounts: dict[Pubkey, AccountData | None],
        tokens: TokenBook,
        clock: ClusterClock,
    ) -> PoolSnapshot:
        pair = meteora_dlmm.decode_lb_pair(entry.address, data)
        symbol_x = tokens.require(pair.token_x_mint, entry.address)
        symbol_y = tokens.require(pair.token_y_mint, entry.address)
        for symbol in (symbol_x, symbol_y):
            refused = unsupported_extensions(tokens.mints[symbol])
            if refused:
                raise PoolLoadError(
                    f"pool {entry.address}: {symbol} has {', '.join(refused)}, which we cannot trade"
                )
        extension_address = meteora_dlmm.bitmap_extension_address(entry.address)
        found = accounts.get(extension_address)
        extension = (
            meteora_dlmm.decode_bitmap_extension(extension_address, found.data) if found is not None else None
        )
        addresses = [
            meteora_dlmm.bin_array_address(entry.address, index)
            for index in meteora_dlmm.bin_arrays_around(pair, extension, ARRAYS_EACH_WAY)
        ]
        arrays = [
            meteora_dlmm.decode_bin_array(address, account.data)
            for address in addresses
            if (account := accounts.get(address)) is not None
        ]
        pool = DlmmPool(
            Dex.METEORA,
            symbol_x,
            symbol_y,
            meteora_dlmm.dlmm_book(pair, arrays),
            opens_at=_opens_at(pair, clock),
            transfer_fees=(
                transfer_fee(tokens.mints[symbol_x], clock.epoch),
                transfer_fee(tokens.mints[symbol_y], clock.epoch),
            ),
        )
        existing = frozenset(array.address for array in arrays)
        return PoolSnapshot(entry, pool, (pair, extension, existing), (extension_address, *addresses))

    def swap_instruction(
        self, snapshot: PoolSnapshot, leg: SwapLeg, user: Pubkey, user_in: Pubkey, user_out: Pubkey
    ) -> Instruction:
        pair, extension, existing = snapshot.state
        swap_for_y = leg.token_in == snapshot.pool.base
        # The arrays the walk may cross, as far as they exist (the quote saw no others).
        arrays = [
            address
            for index in meteora_dlmm.bin_arrays_for_swap(pair, extension, swap_for_y, ARRAYS_EACH_WAY)
            if (address := meteora_dlmm.bin_array_address(pair.address, index)) in existing
        ]
        extension_key = meteora_dlmm.bitmap_extension_address(pair.address) if extension is not None else None
        if leg.exact_out:
            return meteora_dlmm.swap_exact_out2_instruction(
                pair, user, user_in, user_out, leg.amount_in, leg.min_amount_out, arrays, extension_key
            )
        return meteora_dlmm.swap2_instruction(
            pair, user, user_in, user_out, leg.amount_in, leg.min_amount_out, arrays, extension_key
        )

    def read_swap(self, snapshot: PoolSnapshot, ix_data: bytes, accounts: list[Pubkey]) -> DecodedLeg | None:
        pair = snapshot.state[0]
        discriminator = ix_data[:8]
        if discriminator not in (
            meteora_dlmm.SWAP2_DISCRIMINATOR,
            meteora_dlmm.SWAP_EXACT_OUT2_DISCRIMINATOR,
        ):
            return None
        first, second = struct.unpack_from("<QQ", ix_data, 8)
        user, user_in = accounts[10], accounts[4]  # swap2's accounts: user_token_in 4, user 10
        sells_x = user_in == associated_token_address(user, pair.token_x_mint, pair.token_x_program)
        pool = snapshot.pool
        token_in, token_out = (pool.base, pool.quote) if sells_x else (pool.quote, pool.base)
        exact_out = discriminator == meteora_dlmm.SWAP_EXACT_OUT2_DISCRIMINATOR
        return DecodedLeg(pair.address, token_in, token_out, first, second, exact_out)

    def error_code(self, custom: int) -> MarketErrorCode:
        return meteora_dlmm.program_error(custom)


def _opens_at(pair: meteora_dlmm.LbPair, clock: ClusterClock) -> float:
    """When the pair trades, in unix seconds (0: it does now). A pair activated by slot
    opens about 400 ms a slot from now; a disabled one cannot be traded at all."""
    if pair.is_open(clock.slot, clock.unix_timestamp):
        return 0.0
    if pair.status != meteora_dlmm.PAIR_ENABLED:
        raise PoolLoadError(f"pair {pair.address} is disabled (status {pair.status})")
    if pair.activation_type == 0:  # by slot
        return clock.unix_timestamp + (pair.activation_point - clock.slot) * SLOT_S
    return float(pair.activation_point)
