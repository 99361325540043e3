"""What an amount of a token is worth in SOL, at the pools' mid prices (for the
order size cap)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from market.pools import Pool


def _price(pools: Sequence[Pool], token: str, per: str) -> Decimal | None:
    """`per` per `token`, from the first pool that trades the pair."""
    for pool in pools:
        if (pool.base, pool.quote) == (token, per):
            return pool.mid_price()
        if (pool.base, pool.quote) == (per, token):
            mid = pool.mid_price()
            return 1 / mid if mid else None
    return None


def sol_value(pools: Sequence[Pool], token: str, amount: Decimal) -> Decimal | None:
    """`amount` of `token` in SOL, directly or through USDC; None if nothing prices it."""
    if token == "SOL":
        return amount
    direct = _price(pools, token, "SOL")
    if direct is not None:
        return amount * direct
    in_usdc, sol_in_usdc = _price(pools, token, "USDC"), _price(pools, "SOL", "USDC")
    if in_usdc is not None and sol_in_usdc:
        return amount * in_usdc / sol_in_usdc
    return None
