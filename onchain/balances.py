"""An owner's balances on a real cluster, in one `getMultipleAccounts`: SOL is its
account's lamports, each venues-file token the amount in its associated token account
(the account the engine's swaps spend from and pay into; tokens held elsewhere are not
the engine's to spend). Base units."""

from __future__ import annotations

from solders.pubkey import Pubkey

from onchain.pools import TokenBook
from onchain.rpc import SolanaRpc
from onchain.spl import associated_token_address, decode_token_account


class ChainBalances:
    def __init__(self, rpc: SolanaRpc, tokens: TokenBook) -> None:
        self._rpc, self._tokens = rpc, tokens  # the mints, as the pools loaded them

    async def balances(self, address: str) -> dict[str, int]:
        owner = Pubkey.from_string(address)
        tokens = [(symbol, mint) for symbol, mint in self._tokens.mints.items() if symbol != "SOL"]
        accounts = [associated_token_address(owner, mint.address, mint.program) for _, mint in tokens]
        found = await self._rpc.accounts([owner, *accounts])
        balances = {"SOL": found[0].lamports if found[0] is not None else 0}
        for (symbol, _), key, account in zip(tokens, accounts, found[1:], strict=True):
            balances[symbol] = (
                decode_token_account(key, account.owner, account.data).amount if account is not None else 0
            )
        return balances
