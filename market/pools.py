"""The venues' pools and their swap math, in integer base units.

- Raydium: constant-product pools (x · y = k), as Raydium's CPMM / AMM v4 compute it:
  the fee (0.25 %) is taken from the input and rounded up, the output rounded down.
- Raydium CPMM on the real chain: `market.cpmm.CpmmPool`, the program's exact math.
- Meteora: DLMM pools (`market.dlmm`): liquidity in price bins, a swap walks the bins,
  fees rise with volatility.

Both expose `quote` (what a swap would give now) and `swap` (the same, plus the pool as
it is afterwards), so the router, the chain and background traders never care which
kind of pool they hold.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from core.domain import Dex
from core.formatting import format_amount
from market.cpmm import CpmmPool
from market.dlmm import Q64, DlmmBook, FeeParameters, Volatility, bin_id_for_price
from market.swaps import BPS as BPS
from market.swaps import NamedPool as _Named
from market.swaps import SwapResult as SwapResult
from market.swaps import TransferFeeModel
from market.swaps import impact_bps as _impact_bps
from market.tokens import Token, decimals_of, register_token


@dataclass(frozen=True)
class ConstantProductPool(_Named):
    """A Raydium constant-product pool of `base`/`quote`; reserves in base units."""

    dex: Dex
    base: str
    quote: str
    reserve_base: int
    reserve_quote: int
    fee_bps: int
    opens_at: float = 0.0  # epoch seconds; a pool listed for later trades from then on
    listed: tuple[Token, ...] = ()  # tokens this pool lists (not in the static list)

    def mid_price(self) -> Decimal:
        """Quote token per base token, in human units."""
        return (Decimal(self.reserve_quote) / Decimal(self.reserve_base)).scaleb(
            decimals_of(self.base) - decimals_of(self.quote)
        )

    def quote_swap(self, token_in: str, amount_in: int, now: float = 0) -> SwapResult:
        return self.swap(token_in, amount_in, now)[0]

    def marginal_fee_bps(self, now: float) -> Decimal:
        return Decimal(self.fee_bps)

    def swap(self, token_in: str, amount_in: int, now: float = 0) -> tuple[SwapResult, ConstantProductPool]:
        if amount_in <= 0:
            return SwapResult(0, 0, 0, self.fee_bps, 0), self
        if token_in == self.base:
            reserve_in, reserve_out = self.reserve_base, self.reserve_quote
        elif token_in == self.quote:
            reserve_in, reserve_out = self.reserve_quote, self.reserve_base
        else:
            raise ValueError(f"{token_in} is not traded in {self.pool_id}")
        fee = _ceil_div(amount_in * self.fee_bps, BPS)
        net_in = amount_in - fee
        amount_out = reserve_out * net_in // (reserve_in + net_in)
        # Impact: how far the execution price (before fees) falls short of the mid price.
        impact = _impact_bps(amount_out, net_in * reserve_out / reserve_in)
        result = SwapResult(amount_in, amount_out, fee, self.fee_bps, impact)
        # The fee stays in the pool, so k never decreases.
        if token_in == self.base:
            after = replace(self, reserve_base=reserve_in + amount_in, reserve_quote=reserve_out - amount_out)
        else:
            after = replace(self, reserve_quote=reserve_in + amount_in, reserve_base=reserve_out - amount_out)
        return result, after

    def swap_exact_out(
        self, token_in: str, amount_out: int, now: float = 0
    ) -> tuple[SwapResult, ConstantProductPool]:
        """Raydium's swap-base-output: the input before the fee is ⌈x · Δy / (y − Δy)⌉,
        grossed up by the fee, ⌈· × 10⁴ / (10⁴ − fee)⌉, both rounded in the pool's
        favour. Incomplete when the pool does not hold `amount_out`."""
        if token_in == self.base:
            reserve_in, reserve_out = self.reserve_base, self.reserve_quote
        elif token_in == self.quote:
            reserve_in, reserve_out = self.reserve_quote, self.reserve_base
        else:
            raise ValueError(f"{token_in} is not traded in {self.pool_id}")
        if amount_out <= 0:
            return SwapResult(0, 0, 0, self.fee_bps, 0), self
        if amount_out >= reserve_out:
            return SwapResult(0, 0, 0, self.fee_bps, BPS, complete=False), self
        swapped = _ceil_div(reserve_in * amount_out, reserve_out - amount_out)
        amount_in = _ceil_div(swapped * BPS, BPS - self.fee_bps)
        impact = _impact_bps(amount_out, swapped * reserve_out / reserve_in)
        result = SwapResult(amount_in, amount_out, amount_in - swapped, self.fee_bps, impact)
        if token_in == self.base:
            after = replace(self, reserve_base=reserve_in + amount_in, reserve_quote=reserve_out - amount_out)
        else:
            after = replace(self, reserve_quote=reserve_in + amount_in, reserve_base=reserve_out - amount_out)
        return result, after

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "constant_product",
            "reserves": {
                self.base: _human(self.reserve_base, self.base),
                self.quote: _human(self.reserve_quote, self.quote),
            },
        }

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": "cpmm",
            "dex": self.dex,
            "base": self.base,
            "quote": self.quote,
            "reserve_base": str(self.reserve_base),
            "reserve_quote": str(self.reserve_quote),
            "fee_bps": self.fee_bps,
            **_listing_state(self.opens_at, self.listed),
        }


@dataclass(frozen=True)
class DlmmPool(_Named):
    """A Meteora DLMM pool: token X is `base`, token Y is `quote`."""

    dex: Dex
    base: str
    quote: str
    book: DlmmBook
    opens_at: float = 0.0
    listed: tuple[Token, ...] = ()
    # A real pool's Token-2022 transfer fees on base and quote (None: none): the pool
    # receives the input less its fee, the trader the output less its fee.
    transfer_fees: tuple[TransferFeeModel | None, TransferFeeModel | None] = (None, None)

    def _fees(self, token_in: str) -> tuple[TransferFeeModel | None, TransferFeeModel | None]:
        """The input's and the output's transfer fees."""
        base, quote = self.transfer_fees
        return (base, quote) if token_in == self.base else (quote, base)

    @property
    def fee_bps(self) -> int:
        return round(self.book.fee_rate(self.book.volatility) / 100_000)

    def marginal_fee_bps(self, now: float) -> Decimal:
        return Decimal(self.book.marginal_fee_rate(now)) / 100_000

    def mid_price(self) -> Decimal:
        price = Decimal(self.book.price_x64(self.book.active_id)) / Q64
        return price.scaleb(decimals_of(self.base) - decimals_of(self.quote))

    def quote_swap(self, token_in: str, amount_in: int, now: float = 0) -> SwapResult:
        return self.swap(token_in, amount_in, now)[0]

    def swap(self, token_in: str, amount_in: int, now: float = 0) -> tuple[SwapResult, DlmmPool]:
        if token_in not in (self.base, self.quote):
            raise ValueError(f"{token_in} is not traded in {self.pool_id}")
        if amount_in <= 0:
            return SwapResult(0, 0, 0, self.fee_bps, 0), self
        swap_for_y = token_in == self.base
        fee_in, fee_out = self._fees(token_in)
        skimmed_in = fee_in.fee_on(amount_in) if fee_in else 0
        walk = self.book.swap(amount_in - skimmed_in, swap_for_y, now)
        if not walk.complete:
            # The program refuses a swap the bins cannot fill; so does the venue.
            return SwapResult(
                amount_in, 0, 0, round(walk.first_fee_rate / 100_000), BPS, complete=False
            ), self
        price = Decimal(self.book.price_x64(self.book.active_id)) / Q64
        net_in = amount_in - skimmed_in - walk.fee
        ideal = Decimal(net_in) * price if swap_for_y else Decimal(net_in) / price
        received = walk.amount_out - (fee_out.fee_on(walk.amount_out) if fee_out else 0)
        result = SwapResult(
            amount_in,
            received,
            walk.fee,
            round(walk.first_fee_rate / 100_000),
            _impact_bps(received, float(ideal)),
            bins_crossed=walk.bins_crossed,
        )
        return result, replace(self, book=self.book.after(walk))

    def swap_exact_out(self, token_in: str, amount_out: int, now: float = 0) -> tuple[SwapResult, DlmmPool]:
        if token_in not in (self.base, self.quote):
            raise ValueError(f"{token_in} is not traded in {self.pool_id}")
        if amount_out <= 0:
            return SwapResult(0, 0, 0, self.fee_bps, 0), self
        swap_for_y = token_in == self.base
        fee_in, fee_out = self._fees(token_in)
        sent = fee_out.amount_before_fee(amount_out) if fee_out else amount_out
        walk = self.book.swap_exact_out(sent, swap_for_y, now)
        if not walk.complete:
            return SwapResult(0, 0, 0, round(walk.first_fee_rate / 100_000), BPS, complete=False), self
        price = Decimal(self.book.price_x64(self.book.active_id)) / Q64
        net_in = walk.amount_in - walk.fee
        ideal = Decimal(net_in) * price if swap_for_y else Decimal(net_in) / price
        paid = fee_in.amount_before_fee(walk.amount_in) if fee_in else walk.amount_in
        result = SwapResult(
            paid,
            amount_out,
            walk.fee,
            round(walk.first_fee_rate / 100_000),
            _impact_bps(walk.amount_out, float(ideal)),
            bins_crossed=walk.bins_crossed,
        )
        return result, replace(self, book=self.book.after(walk))

    def describe(self) -> dict[str, Any]:
        x, y = self.book.bins.get(self.book.active_id, (0, 0))
        return {
            "kind": "dlmm",
            "bin_step": self.book.bin_step,
            "active_bin": {
                "id": self.book.active_id,
                self.base: _human(x, self.base),
                self.quote: _human(y, self.quote),
            },
            "bins": len(self.book.bins),
            "volatility_accumulator": self.book.volatility.accumulator,
            "reserves": {
                self.base: _human(sum(b[0] for b in self.book.bins.values()), self.base),
                self.quote: _human(sum(b[1] for b in self.book.bins.values()), self.quote),
            },
        }

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": "dlmm",
            "dex": self.dex,
            "base": self.base,
            "quote": self.quote,
            **self.book.to_state(),
            **_listing_state(self.opens_at, self.listed),
        }


Pool = ConstantProductPool | DlmmPool | CpmmPool


def pool_from_state(state: dict[str, Any]) -> Pool:
    dex = Dex(state["dex"])
    listed = tuple(Token(t["symbol"], t["mint"], int(t["decimals"])) for t in state.get("listed", ()))
    for token in listed:
        register_token(token)
    opens_at = float(state.get("opens_at", 0.0))
    if state.get("kind") == "raydium_cpmm":
        return CpmmPool.from_state(state, listed)
    if state.get("kind") == "dlmm":
        return DlmmPool(
            dex, str(state["base"]), str(state["quote"]), DlmmBook.from_state(state), opens_at, listed
        )
    return ConstantProductPool(
        dex=dex,
        base=str(state["base"]),
        quote=str(state["quote"]),
        reserve_base=int(state["reserve_base"]),
        reserve_quote=int(state["reserve_quote"]),
        fee_bps=int(state["fee_bps"]),
        opens_at=opens_at,
        listed=listed,
    )


def _listing_state(opens_at: float, listed: tuple[Token, ...]) -> dict[str, Any]:
    if not opens_at and not listed:
        return {}
    return {"opens_at": opens_at, "listed": [t.__dict__ for t in listed]}


def raydium_pool(
    base: str, quote: str, base_amount: str, price: str, fee_bps: int = 25
) -> ConstantProductPool:
    """A Raydium pool holding `base_amount` of base at `price` quote per base (human units)."""
    base_units = int(Decimal(base_amount).scaleb(decimals_of(base)))
    quote_units = int((Decimal(base_amount) * Decimal(price)).scaleb(decimals_of(quote)))
    return ConstantProductPool(Dex.RAYDIUM, base, quote, base_units, quote_units, fee_bps)


def meteora_pool(
    base: str,
    quote: str,
    price: str,
    quote_per_bin: str,
    bin_step: int = 10,
    bins_each_side: int = 200,
    fees: FeeParameters | None = None,
) -> DlmmPool:
    """A DLMM pool centred on `price` (quote per base, human units), `quote_per_bin` of
    liquidity in each bin: quote tokens below the active bin, base tokens above it, and
    half of each in the active bin."""
    per_unit = Decimal(price).scaleb(decimals_of(quote) - decimals_of(base))
    active = bin_id_for_price(bin_step, per_unit)
    quote_units = int(Decimal(quote_per_bin).scaleb(decimals_of(quote)))
    bins: dict[int, tuple[int, int]] = {}
    for offset in range(-bins_each_side, bins_each_side + 1):
        bin_id = active + offset
        base_units = quote_units * Q64 // DlmmBook(bin_step, active, {}).price_x64(bin_id)
        if offset < 0:
            bins[bin_id] = (0, quote_units)
        elif offset > 0:
            bins[bin_id] = (base_units, 0)
        else:
            bins[bin_id] = (base_units // 2, quote_units // 2)
    book = DlmmBook(bin_step, active, bins, fees or FeeParameters(), Volatility(index_reference=active))
    return DlmmPool(Dex.METEORA, base, quote, book)


def meteora_sol_usdc() -> DlmmPool:
    """SOL/USDC on Meteora: bin step 10, ≈ 6 000 USDC a bin, around 150 USDC."""
    return meteora_pool("SOL", "USDC", "150", "6000")


def genesis_pools() -> list[Pool]:
    """The market on first start: SOL at ≈ 150 USDC, every pair on both venues.

    Raydium's SOL/USDC holds 50 000 SOL / 7.5 M USDC at 0.25 %; Meteora's is thinner
    per price level but cheaper (0.1 % base fee), so small orders go to Meteora and
    large ones split.
    """
    fx_fees = FeeParameters(base_factor=10_000, variable_fee_control=0)  # bin step 1: 0.01 %
    return [
        raydium_pool("SOL", "USDC", "50000", "150"),
        meteora_sol_usdc(),
        raydium_pool("SOL", "USDT", "30000", "150.02"),
        meteora_pool("SOL", "USDT", "149.98", "3000"),
        raydium_pool("USDC", "USDT", "5000000", "1.0002"),
        meteora_pool("USDC", "USDT", "1.0", "50000", bin_step=1, fees=fx_fees),
        raydium_pool("BONK", "SOL", "50000000000", "0.00000016"),
        meteora_pool("BONK", "SOL", "0.000000161", "20", bin_step=20),
        raydium_pool("JUP", "USDC", "5000000", "0.9"),
        meteora_pool("JUP", "USDC", "0.901", "3000", bin_step=20),
        raydium_pool("RAY", "USDC", "3000000", "2.4"),
        meteora_pool("RAY", "USDC", "2.41", "3000", bin_step=20),
    ]


def pools_for_pair(pools: list[Pool], token_in: str, token_out: str) -> list[Pool]:
    return [p for p in pools if {p.base, p.quote} == {token_in, token_out}]


def _human(amount: int, symbol: str) -> str:
    return format_amount(amount, decimals_of(symbol))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)
