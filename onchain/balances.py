"""An owner's balances on a real cluster: SOL (`getBalance`) and the venues file's
tokens (`getTokenAccountsByOwner`, SPL Token and Token-2022), in base units."""

from __future__ import annotations

import asyncio

from solders.pubkey import Pubkey

from onchain.rpc import SolanaRpc
from onchain.spl import TOKEN_2022_PROGRAM, TOKEN_PROGRAM, decode_token_account


class ChainBalances:
    def __init__(self, rpc: SolanaRpc, tokens: dict[str, Pubkey]) -> None:
        self._rpc = rpc
        self._symbols = {mint: symbol for symbol, mint in tokens.items()}

    async def balances(self, address: str) -> dict[str, int]:
        owner = Pubkey.from_string(address)
        lamports, classic, extended = await asyncio.gather(
            self._rpc.balance(owner),
            self._rpc.token_accounts(owner, TOKEN_PROGRAM),
            self._rpc.token_accounts(owner, TOKEN_2022_PROGRAM),
        )
        found = {symbol: 0 for symbol in self._symbols.values()}
        for key, account in [*classic, *extended]:
            token = decode_token_account(key, account.owner, account.data)
            symbol = self._symbols.get(token.mint)
            if symbol is not None and symbol != "SOL":  # wrapped SOL is spent as SOL
                found[symbol] += token.amount
        found["SOL"] = lamports
        return found
