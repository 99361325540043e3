"""Driving the simulated market (operators, through /sim): list a token whose pool opens
later (what sniper orders wait for), move a pair's price by trading against its pools
(what limit orders react to), top up the wallet."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from decimal import Decimal

from core.domain import Dex
from core.errors import Conflict, InvalidInput
from core.formatting import to_base_units
from market.clock import MarketClock
from market.errors import MarketError, MarketErrorCode
from market.pool_store import PoolStore
from market.pools import Pool, meteora_pool, raydium_pool
from market.tokens import Token, find_token, new_token, register_token
from wallets.schemas import Balance
from wallets.service import Wallets

# A top-up is a test convenience, not a mint: at most this many base units at a time.
MAX_TOP_UP_UNITS = 2**63
NEW_SYMBOL = re.compile(r"^[A-Z0-9]{2,10}$")


class PoolExists(Conflict):
    code, title = "pool_exists", "Pool exists"


@dataclass(frozen=True)
class PriceMoved:
    pool: Pool  # as it was before
    before: Decimal
    after: Decimal
    token_in: str
    amount_in: int


class SimulationControls:
    def __init__(self, pools: PoolStore, wallets: Wallets, clock: MarketClock) -> None:
        self._pools, self._wallets, self._clock = pools, wallets, clock

    async def top_up(self, owner: str, symbol_or_mint: str, amount: Decimal) -> tuple[Token, Balance]:
        """Add funds to an owner's wallet; the token and its balance after."""
        token = find_token(symbol_or_mint)
        if token is None:
            raise InvalidInput(
                "unknown_token", "token", f"{symbol_or_mint!r} is not a listed token (GET /tokens)"
            )
        if -amount.as_tuple().exponent > token.decimals:  # type: ignore[operator]
            raise InvalidInput(
                "invalid_amount", "amount", f"{token.symbol} has at most {token.decimals} decimals"
            )
        units = to_base_units(amount, token.decimals)
        if units >= MAX_TOP_UP_UNITS:
            raise InvalidInput("invalid_amount", "amount", "must be under 2^63 base units")
        return token, await self._wallets.fund(owner, token.symbol, units)

    async def list_pool(
        self,
        *,
        symbol: str,
        decimals: int,
        quote_symbol: str,
        dex: Dex,
        liquidity: Decimal,
        price: Decimal,
        activation_in_s: float,
    ) -> tuple[Pool, Token]:
        """A new pool for `symbol` that opens `activation_in_s` from now."""
        symbol = symbol.upper()
        if not NEW_SYMBOL.fullmatch(symbol):
            raise InvalidInput("invalid_token", "token", "must match ^[A-Z0-9]{2,10}$")
        quote = find_token(quote_symbol)
        if quote is None:
            raise InvalidInput("unknown_token", "quote_token", f"{quote_symbol!r} is not a listed token")
        existing = find_token(symbol)
        if existing is not None and existing.decimals != decimals:
            raise InvalidInput(
                "invalid_token", "decimals", f"{symbol} is listed with {existing.decimals} decimals"
            )
        token = existing or new_token(symbol, decimals)
        register_token(token)
        if dex is Dex.RAYDIUM:
            pool: Pool = raydium_pool(token.symbol, quote.symbol, str(liquidity / price), str(price))
        else:
            pool = meteora_pool(
                token.symbol, quote.symbol, str(price), str(liquidity / 50), bin_step=20, bins_each_side=50
            )
        pool = replace(
            pool, opens_at=self._clock.now() + activation_in_s, listed=(token,) if existing is None else ()
        )
        if not await self._pools.add(pool):
            raise PoolExists(f"{pool.pool_id} already exists")
        return pool, token

    async def move_pair(self, pair: str, move_bps: int, dex: Dex | None) -> list[PriceMoved]:
        """Move the pair's pools (or one venue's) by trading against them; `move_bps` is
        about the pair as named (a pool listing it the other way round moves inversely)."""
        if move_bps == 0:
            raise InvalidInput("invalid_move", "move_bps", "must not be 0")
        base, _, quote = pair.upper().partition("/")
        pools = [p for p in await self._pools.all(base, quote) if dex is None or p.dex == dex]
        if not pools:
            raise InvalidInput("unknown_pair", "pair", f"no pool trades {pair} (see GET /markets)")
        moved = []
        for pool in pools:
            try:
                moved.append(
                    await self.move_price(pool.pool_id, move_bps if pool.base == base else -move_bps)
                )
            except MarketError as error:
                raise InvalidInput("invalid_move", "move_bps", error.message) from None
        return moved

    async def move_price(self, pool_id: str, move_bps: int) -> PriceMoved:
        """Trade against one pool until its mid price has moved by `move_bps` (positive:
        the base token gets dearer)."""
        seen: dict[str, tuple[Pool, tuple[str, int]]] = {}

        def decide(pool: Pool) -> tuple[str, int]:
            trade = price_moving_trade(pool, move_bps, self._clock.now())
            seen["trade"] = (pool, trade)
            return trade

        await self._pools.trade(pool_id, decide, self._clock.now())
        after = (await self._pools.get(pool_id)).mid_price()
        pool, (token_in, amount_in) = seen["trade"]
        return PriceMoved(pool, pool.mid_price(), after, token_in, amount_in)


def price_moving_trade(pool: Pool, move_bps: int, now: float) -> tuple[str, int]:
    """The smallest trade that moves `pool`'s mid price by at least `move_bps`."""
    target = pool.mid_price() * (1 + Decimal(move_bps) / 10_000)
    token_in = pool.quote if move_bps > 0 else pool.base

    def reached(amount: int) -> bool:
        price = pool.swap(token_in, amount, now)[1].mid_price()
        return price >= target if move_bps > 0 else price <= target

    high = 1
    while not reached(high):
        high *= 2
        if high > 2**80:
            raise MarketError(MarketErrorCode.INVALID_ORDER, f"{pool.pool_id} cannot move {move_bps} bps")
    low = high // 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if reached(middle) else (middle, high)
    return token_in, high
