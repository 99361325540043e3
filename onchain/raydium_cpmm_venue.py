"""Raydium CPMM as a venue of the real chain: the pool's accounts (its state, its
config's fee rates, its two vaults) decoded into the router's `CpmmPool`, and its swap
instructions (onchain/raydium_cpmm.py has the program's layouts)."""

from __future__ import annotations

import struct

from solders.instruction import Instruction
from solders.pubkey import Pubkey

from contracts.failures import MarketErrorCode
from market.transactions import SwapLeg
from onchain import raydium_cpmm
from onchain.pools import ClusterClock, DecodedLeg, PoolLoadError, PoolSnapshot, TokenBook
from onchain.rpc import AccountData
from onchain.spl import decode_token_account, transfer_fee
from onchain.venues_file import PoolEntry, VenueKind


class RaydiumCpmmVenue:
    kind = VenueKind.RAYDIUM_CPMM
    program_ids = frozenset({raydium_cpmm.PROGRAM_ID, raydium_cpmm.DEVNET_PROGRAM_ID})

    def dependencies(self, address: Pubkey, data: bytes) -> list[Pubkey]:
        state = raydium_cpmm.decode_pool_state(address, data)
        return [state.amm_config, state.token_0_vault, state.token_1_vault]

    def snapshot(
        self,
        entry: PoolEntry,
        program: Pubkey,
        data: bytes,
        accounts: dict[Pubkey, AccountData | None],
        tokens: TokenBook,
        clock: ClusterClock,
    ) -> PoolSnapshot:
        state = raydium_cpmm.decode_pool_state(entry.address, data)
        config = _required(accounts, state.amm_config, "its amm_config")
        vault_0 = _required(accounts, state.token_0_vault, "its token 0 vault")
        vault_1 = _required(accounts, state.token_1_vault, "its token 1 vault")
        symbol_0 = tokens.require(state.token_0_mint, entry.address)
        symbol_1 = tokens.require(state.token_1_mint, entry.address)
        for symbol in (symbol_0, symbol_1):
            fee = transfer_fee(tokens.mints[symbol], clock.epoch)
            if fee is not None and fee.basis_points > 0:
                raise PoolLoadError(
                    f"pool {entry.address}: {symbol} charges a Token-2022 transfer fee, which CPMM quotes do not model"
                )
        pool = raydium_cpmm.cpmm_pool(
            state,
            raydium_cpmm.decode_amm_config(state.amm_config, config.data),
            decode_token_account(state.token_0_vault, vault_0.owner, vault_0.data).amount,
            decode_token_account(state.token_1_vault, vault_1.owner, vault_1.data).amount,
            symbol_0,
            symbol_1,
        )
        return PoolSnapshot(
            entry, pool, (state, program), (state.amm_config, state.token_0_vault, state.token_1_vault)
        )

    def swap_instruction(
        self, snapshot: PoolSnapshot, leg: SwapLeg, user: Pubkey, user_in: Pubkey, user_out: Pubkey
    ) -> Instruction:
        state, program = snapshot.state
        input_mint = state.token_0_mint if leg.token_in == snapshot.pool.base else state.token_1_mint
        if leg.exact_out:
            return raydium_cpmm.swap_base_output_instruction(
                state, user, user_in, user_out, input_mint, leg.amount_in, leg.min_amount_out, program
            )
        return raydium_cpmm.swap_base_input_instruction(
            state, user, user_in, user_out, input_mint, leg.amount_in, leg.min_amount_out, program
        )

    def read_swap(self, snapshot: PoolSnapshot, ix_data: bytes, accounts: list[Pubkey]) -> DecodedLeg | None:
        state, _ = snapshot.state
        discriminator = ix_data[:8]
        if discriminator not in (
            raydium_cpmm.SWAP_BASE_INPUT_DISCRIMINATOR,
            raydium_cpmm.SWAP_BASE_OUTPUT_DISCRIMINATOR,
        ):
            return None
        first, second = struct.unpack_from("<QQ", ix_data, 8)
        base_in = accounts[6] == state.token_0_vault  # the input vault (swap_base_input.rs 9-73)
        pool = snapshot.pool
        token_in, token_out = (pool.base, pool.quote) if base_in else (pool.quote, pool.base)
        exact_out = discriminator == raydium_cpmm.SWAP_BASE_OUTPUT_DISCRIMINATOR
        return DecodedLeg(snapshot.entry.address, token_in, token_out, first, second, exact_out)

    def error_code(self, custom: int) -> MarketErrorCode:
        return raydium_cpmm.program_error(custom)


def _required(accounts: dict[Pubkey, AccountData | None], key: Pubkey, what: str) -> AccountData:
    account = accounts.get(key)
    if account is None:
        raise PoolLoadError(f"{what} ({key}) does not exist")
    return account
