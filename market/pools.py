"""Pools and their swap math.

For now both venues are constant-product pools (x * y = k) with the fee taken from
the input, computed in integer base units with on-chain rounding. Each venue keeps its
own pool type behind `Pool`, so a venue can change its math (Meteora DLMM bins) without
the router or the chain noticing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal

from market.tokens import find_token

Dex = Literal["raydium", "meteora"]
DEXES: tuple[Dex, ...] = ("raydium", "meteora")
BPS = 10_000


@dataclass(frozen=True)
class SwapResult:
    amount_in: int
    amount_out: int
    fee: int  # in units of the input token
    fee_bps: int
    price_impact_bps: int


@dataclass(frozen=True)
class Pool:
    """A constant-product pool of `base`/`quote`; reserves in base units."""

    dex: Dex
    base: str
    quote: str
    reserve_base: int
    reserve_quote: int
    fee_bps: int

    @property
    def pool_id(self) -> str:
        return f"{self.dex}:{self.base}/{self.quote}"

    @property
    def pair(self) -> str:
        return f"{self.base}/{self.quote}"

    def mid_price(self) -> Decimal:
        """Quote token per base token, in human units."""
        base, quote = _decimals(self.base), _decimals(self.quote)
        return (Decimal(self.reserve_quote) / Decimal(self.reserve_base)).scaleb(base - quote)

    def reserves_for(self, token_in: str) -> tuple[int, int]:
        if token_in == self.base:
            return self.reserve_base, self.reserve_quote
        if token_in == self.quote:
            return self.reserve_quote, self.reserve_base
        raise ValueError(f"{token_in} is not traded in {self.pool_id}")

    def swap_exact_in(self, token_in: str, amount_in: int) -> SwapResult:
        """Output for `amount_in`, as the on-chain program computes it.

        The fee is taken from the input and rounded up (ceil), the output rounded down,
        so rounding always favours the pool and k never decreases.
        """
        if amount_in <= 0:
            return SwapResult(amount_in, 0, 0, self.fee_bps, 0)
        reserve_in, reserve_out = self.reserves_for(token_in)
        fee = -(-amount_in * self.fee_bps // BPS)
        net_in = amount_in - fee
        amount_out = reserve_out * net_in // (reserve_in + net_in)
        # Impact: how far the execution price (before fees) falls short of the mid price.
        ideal_out = reserve_out * net_in / reserve_in if net_in else 0
        impact = round((1 - amount_out / ideal_out) * BPS) if ideal_out else 0
        return SwapResult(amount_in, amount_out, fee, self.fee_bps, max(impact, 0))

    def after_swap(self, token_in: str, result: SwapResult) -> Pool:
        """The pool once `result` has executed (the fee stays in the pool)."""
        if token_in == self.base:
            return replace(
                self,
                reserve_base=self.reserve_base + result.amount_in,
                reserve_quote=self.reserve_quote - result.amount_out,
            )
        return replace(
            self,
            reserve_quote=self.reserve_quote + result.amount_in,
            reserve_base=self.reserve_base - result.amount_out,
        )

    def to_state(self) -> dict[str, object]:
        return {
            "dex": self.dex,
            "base": self.base,
            "quote": self.quote,
            "reserve_base": str(self.reserve_base),
            "reserve_quote": str(self.reserve_quote),
            "fee_bps": self.fee_bps,
        }

    @classmethod
    def from_state(cls, state: dict[str, object]) -> Pool:
        dex = str(state["dex"])
        if dex not in DEXES:
            raise ValueError(f"unknown dex {dex}")
        return cls(
            dex=dex,  # checked above
            base=str(state["base"]),
            quote=str(state["quote"]),
            reserve_base=int(str(state["reserve_base"])),
            reserve_quote=int(str(state["reserve_quote"])),
            fee_bps=int(str(state["fee_bps"])),
        )


def _decimals(symbol: str) -> int:
    token = find_token(symbol)
    if token is None:
        raise ValueError(f"unknown token {symbol}")
    return token.decimals


def _pool(dex: Dex, base: str, quote: str, base_amount: str, price: str, fee_bps: int) -> Pool:
    """A pool holding `base_amount` of base at `price` quote per base (human units)."""
    base_units = int(Decimal(base_amount).scaleb(_decimals(base)))
    quote_units = int((Decimal(base_amount) * Decimal(price)).scaleb(_decimals(quote)))
    return Pool(dex, base, quote, base_units, quote_units, fee_bps)


def genesis_pools() -> list[Pool]:
    """The market on first start. Raydium is deep with a 0.25 % fee; Meteora is
    shallower and cheaper, so small orders go to Meteora and large ones to Raydium."""
    return [
        _pool("raydium", "SOL", "USDC", "50000", "150", 25),
        _pool("meteora", "SOL", "USDC", "20000", "150.05", 10),
        _pool("raydium", "SOL", "USDT", "30000", "150.02", 25),
        _pool("meteora", "SOL", "USDT", "10000", "149.98", 10),
        _pool("raydium", "USDC", "USDT", "5000000", "1.0002", 25),
        _pool("meteora", "USDC", "USDT", "5000000", "1.0", 1),
        _pool("raydium", "BONK", "SOL", "50000000000", "0.00000016", 25),
        _pool("meteora", "BONK", "SOL", "20000000000", "0.000000161", 20),
        _pool("raydium", "JUP", "USDC", "5000000", "0.9", 25),
        _pool("meteora", "JUP", "USDC", "2000000", "0.901", 15),
        _pool("raydium", "RAY", "USDC", "3000000", "2.4", 25),
        _pool("meteora", "RAY", "USDC", "1000000", "2.41", 15),
    ]


def pools_for_pair(pools: list[Pool], token_in: str, token_out: str) -> list[Pool]:
    return [p for p in pools if {p.base, p.quote} == {token_in, token_out}]
