"""Meteora DLMM: liquidity in discrete price bins, swapped through bin by bin.

Bin `id` trades at price (1 + binStep/10⁴)^id (token Y base units per token X base unit,
as Q64.64). A swap empties the active bin and moves on to the next. The fee is a base fee
(baseFactor × binStep × 10, over 10⁹) plus a variable fee that grows with the volatility
accumulator as the swap crosses bins, computed per bin and capped at 10 %. The walk is the
on-chain program's, integer for integer: `tests/unit/test_dlmm.py` reproduces quotes
recorded from the real program on a real SOL/USDC pool to the lamport.

Unlike a quoting library, this pool also applies a swap: bins, the active bin and the
volatility state move, so the next quote sees what the last trade did.

Books loaded from real accounts (onchain/meteora_dlmm.py) set what the simulated pools
leave at their defaults: the pair's collect-fee mode (`fee_in_y`: the fee is always taken
in token Y, so off the output when selling X), limit orders, and `fees_stay_in_bins=False`
(on chain a bin receives the input net of the fee; LP fees are accounted apart). The walk
follows the SDK's reference quote, MeteoraAg/dlmm-sdk commons/src/quote.rs (per-bin exact
in: lines 37-137 and 198-263; exact out: 265-383) and extensions/lb_pair.rs (fees: 136-249;
collect-fee mode: 279-287).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal, localcontext
from functools import lru_cache
from typing import Any

Q64 = 2**64
FEE_PRECISION = 1_000_000_000
MAX_FEE_RATE = 100_000_000  # 10 %
BASIS_POINT_MAX = 10_000
VARIABLE_FEE_DENOMINATOR = 100_000_000_000


@dataclass(frozen=True)
class FeeParameters:
    """Static fee parameters. Defaults: Meteora's preset for binStep 10 (0.1 % base fee)."""

    base_factor: int = 10_000
    base_fee_power_factor: int = 0
    variable_fee_control: int = 40_000
    max_volatility_accumulator: int = 350_000
    filter_period: int = 30
    decay_period: int = 600
    reduction_factor: int = 5_000


@dataclass(frozen=True)
class Volatility:
    accumulator: int = 0
    reference: int = 0
    index_reference: int = 0
    last_update: float = 0.0


@dataclass(frozen=True)
class BinSwap:
    amount_in: int
    amount_out: int
    fee: int  # of the input token, summed over the bins crossed
    bins_crossed: int
    complete: bool  # False when the pool ran out of liquidity
    bins: dict[int, tuple[int, int]]  # new reserves of the bins touched
    active_id: int
    volatility: Volatility
    first_fee_rate: int
    # Fee taken off the output instead (collect-fee mode "only Y", selling X), output token.
    fee_out: int = 0
    # New limit orders of the bins whose orders this swap filled (processed, open, ask side).
    orders: dict[int, tuple[int, int, bool]] = field(default_factory=dict)


@dataclass(frozen=True)
class DlmmBook:
    """The pure state of a DLMM pool: bins, active bin, fee parameters, volatility."""

    bin_step: int
    active_id: int
    bins: dict[int, tuple[int, int]]  # bin id -> (amount_x, amount_y), base units
    fees: FeeParameters = FeeParameters()
    volatility: Volatility = Volatility()
    # On-chain bin prices, when the book was loaded from real accounts; else computed.
    prices: dict[int, int] = field(default_factory=dict)
    # Limit orders resting in bins (bin id -> processed, open, ask side), as on chain; the
    # simulated pools have none, but a real pool loaded for the oracle test does.
    limit_orders: dict[int, tuple[int, int, bool]] = field(default_factory=dict)
    # The pair's collect-fee mode 1: the fee is always taken in token Y.
    fee_in_y: bool = False
    # The simulated pools keep LP fees in the bins; the program does not (see the docstring).
    fees_stay_in_bins: bool = True

    def price_x64(self, bin_id: int) -> int:
        price = self.prices.get(bin_id)
        return price if price is not None else bin_price_x64(self.bin_step, bin_id)

    def fee_rate(self, volatility: Volatility) -> int:
        base: int = self.fees.base_factor * self.bin_step * 10 * 10**self.fees.base_fee_power_factor
        variable = 0
        if self.fees.variable_fee_control > 0:
            squared = (volatility.accumulator * self.bin_step) ** 2
            variable = _ceil_div(self.fees.variable_fee_control * squared, VARIABLE_FEE_DENOMINATOR)
        return min(base + variable, MAX_FEE_RATE)

    def swap(self, amount_in: int, swap_for_y: bool, now: float) -> BinSwap:
        """Exact-in swap of X for Y (`swap_for_y`) or Y for X, as the program walks it."""
        volatility = self._reference_updated(now)
        fee_on_input = not (self.fee_in_y and swap_for_y)
        step = -1 if swap_for_y else 1
        current, remaining, out_total, fee_total, fee_out_total, crossed = (
            self.active_id,
            amount_in,
            0,
            0,
            0,
            0,
        )
        touched: dict[int, tuple[int, int]] = {}
        orders: dict[int, tuple[int, int, bool]] = {}
        first_fee_rate = self.fee_rate(volatility)
        lowest, highest = (min(self.bins), max(self.bins)) if self.bins else (0, -1)
        current = self._entry(current, swap_for_y, lowest, highest)
        while remaining > 0 and lowest <= current <= highest:
            amount_x, amount_y = self.bins.get(current, (0, 0))
            reserve_out = amount_y if swap_for_y else amount_x
            processed, open_orders = self._orders_filling(current, swap_for_y)
            if reserve_out == 0 and processed == 0 and open_orders == 0:
                current += step
                continue
            volatility = self._accumulated(volatility, current)
            fee_rate = self.fee_rate(volatility)
            if crossed == 0:
                first_fee_rate = fee_rate
            price = self.price_x64(current)
            left = remaining - _ceil_div(remaining * fee_rate, FEE_PRECISION) if fee_on_input else remaining
            used, outs = 0, [0, 0, 0]
            market_used = 0
            # Market-maker liquidity first, then processed and open limit orders.
            for tier, reserve in enumerate((reserve_out, processed, open_orders)):
                if left <= 0 or reserve <= 0:
                    continue
                max_in = _amount_in(reserve, price, swap_for_y)
                if left >= max_in:
                    tier_in, tier_out = max_in, reserve
                else:
                    tier_in = left
                    tier_out = (left * price) // Q64 if swap_for_y else (left * Q64) // price
                left -= tier_in
                used += tier_in
                outs[tier] = tier_out
                if tier == 0:
                    market_used = tier_in
            out = sum(outs)
            if fee_on_input:
                # The bin is emptied when input is left over: pay exactly what it took, fee included.
                paid = _ceil_div(used * FEE_PRECISION, FEE_PRECISION - fee_rate) if left > 0 else remaining
                fee, out_fee = paid - used, 0
            else:
                paid, fee, out_fee = used, 0, _ceil_div(out * fee_rate, FEE_PRECISION)
            fee_total += fee
            fee_out_total += out_fee
            remaining -= paid
            out_total += out - out_fee
            touched[current] = self._bin_after(
                current, swap_for_y, market_used, outs[0], fee, out_fee, used, out
            )
            if outs[1] or outs[2]:
                orders[current] = (processed - outs[1], open_orders - outs[2], not swap_for_y)
            crossed += 1
            if remaining > 0:
                current += step
        active_id = max(lowest, min(highest, current)) if self.bins else current
        return BinSwap(
            amount_in=amount_in - remaining,
            amount_out=out_total,
            fee=fee_total,
            bins_crossed=crossed,
            complete=remaining == 0,
            bins=touched,
            active_id=active_id,
            volatility=self._stamped(volatility, active_id, now),
            first_fee_rate=first_fee_rate,
            fee_out=fee_out_total,
            orders=orders,
        )

    def swap_exact_out(self, amount_out: int, swap_for_y: bool, now: float) -> BinSwap:
        """Exact-out swap, as the program walks it: each bin gives what is still wanted of
        its liquidity (market makers', then processed and open limit orders); the input it
        needs is rounded up per tier, then grossed up by the bin's fee (fees on the input
        side: fee = ⌈in · rate / (10⁹ − rate)⌉; on the output side the wanted amount is
        grossed up instead). A bin that cannot give all that is wanted is emptied. Incomplete
        when the bins run out."""
        volatility = self._reference_updated(now)
        fee_on_input = not (self.fee_in_y and swap_for_y)
        step = -1 if swap_for_y else 1
        current, wanted, paid_total, fee_total, fee_out_total, crossed = (
            self.active_id,
            amount_out,
            0,
            0,
            0,
            0,
        )
        touched: dict[int, tuple[int, int]] = {}
        orders: dict[int, tuple[int, int, bool]] = {}
        first_fee_rate = self.fee_rate(volatility)
        lowest, highest = (min(self.bins), max(self.bins)) if self.bins else (0, -1)
        current = self._entry(current, swap_for_y, lowest, highest)
        while wanted > 0 and lowest <= current <= highest:
            amount_x, amount_y = self.bins.get(current, (0, 0))
            reserve_out = amount_y if swap_for_y else amount_x
            processed, open_orders = self._orders_filling(current, swap_for_y)
            if reserve_out + processed + open_orders == 0:
                current += step
                continue
            volatility = self._accumulated(volatility, current)
            fee_rate = self.fee_rate(volatility)
            if crossed == 0:
                first_fee_rate = fee_rate
            price = self.price_x64(current)
            gross = wanted if fee_on_input else wanted + _fee_on_net(wanted, fee_rate)
            drained = gross >= reserve_out + processed + open_orders
            left, needed, outs = gross, 0, [0, 0, 0]
            for tier, reserve in enumerate((reserve_out, processed, open_orders)):
                take = reserve if drained else min(left, reserve)
                if take <= 0:
                    continue
                needed += _amount_in(take, price, swap_for_y)
                outs[tier] = take
                left -= take
            out = sum(outs)
            if fee_on_input:
                fee, out_fee = _fee_on_net(needed, fee_rate), 0
                got = out if drained else wanted
            else:
                fee, out_fee = 0, _ceil_div(out * fee_rate, FEE_PRECISION) if drained else gross - wanted
                got = min(wanted, out - out_fee) if drained else wanted
            paid = needed + fee
            fee_total += fee
            fee_out_total += out_fee
            paid_total += paid
            wanted -= got
            market_used = _amount_in(outs[0], price, swap_for_y) if outs[0] else 0
            touched[current] = self._bin_after(
                current, swap_for_y, market_used, outs[0], fee, out_fee, needed, out
            )
            if outs[1] or outs[2]:
                orders[current] = (processed - outs[1], open_orders - outs[2], not swap_for_y)
            crossed += 1
            if wanted > 0:
                current += step
        active_id = max(lowest, min(highest, current)) if self.bins else current
        return BinSwap(
            amount_in=paid_total,
            amount_out=amount_out - wanted,
            fee=fee_total,
            bins_crossed=crossed,
            complete=wanted == 0,
            bins=touched,
            active_id=active_id,
            volatility=self._stamped(volatility, active_id, now),
            first_fee_rate=first_fee_rate,
            fee_out=fee_out_total,
            orders=orders,
        )

    @staticmethod
    def _entry(active_id: int, swap_for_y: bool, lowest: int, highest: int) -> int:
        """Where the walk starts: the active bin, or the nearest known bin the swap's way when
        the active bin lies beyond them (its bin array uninitialized: the program moves the
        active bin to the next array's edge, dlmm-sdk commons/src/quote.rs 412-432)."""
        if lowest > highest:
            return active_id
        return min(active_id, highest) if swap_for_y else max(active_id, lowest)

    def _stamped(self, volatility: Volatility, active_id: int, now: float) -> Volatility:
        """The program stamps the pair's last update only when a swap moves the active bin
        (found running it: a swap within the active bin leaves the timestamp), so the decay
        of the next swap's reference counts from the last move."""
        return replace(volatility, last_update=now) if active_id != self.active_id else volatility

    def _orders_filling(self, bin_id: int, swap_for_y: bool) -> tuple[int, int]:
        """(processed, open) limit orders a swap this way fills: selling X fills bids (not
        ask side), selling Y fills asks (dlmm-sdk commons/src/extensions/bin.rs 120-132)."""
        processed, open_orders, ask_side = self.limit_orders.get(bin_id, (0, 0, False))
        if ask_side == swap_for_y:
            return 0, 0
        return processed, open_orders

    def _bin_after(
        self,
        bin_id: int,
        swap_for_y: bool,
        market_in: int,
        market_out: int,
        fee: int,
        out_fee: int,
        used: int,
        out: int,
    ) -> tuple[int, int]:
        """A bin's market-maker reserves after giving `market_out` for `market_in`: the
        simulated pools also keep the LP's share of the fee in the bin (pro rata of the
        market makers' part of the input, or of the output when the fee is on the output)."""
        amount_x, amount_y = self.bins.get(bin_id, (0, 0))
        gained, lost = market_in, market_out
        if self.fees_stay_in_bins:
            gained += fee if used == 0 else fee * market_in // used
            lost -= out_fee if out == 0 else out_fee * market_out // out
        return (amount_x + gained, amount_y - lost) if swap_for_y else (amount_x - lost, amount_y + gained)

    def marginal_fee_rate(self, now: float) -> int:
        """The fee rate the first unit of a swap at `now` would pay (after the decay)."""
        return self.fee_rate(self._accumulated(self._reference_updated(now), self.active_id))

    def after(self, swap: BinSwap) -> DlmmBook:
        return replace(
            self,
            bins={**self.bins, **swap.bins},
            active_id=swap.active_id,
            volatility=swap.volatility,
            limit_orders={**self.limit_orders, **swap.orders} if swap.orders else self.limit_orders,
        )

    def _reference_updated(self, now: float) -> Volatility:
        """At the start of a swap: the reference decays with the time since the last one."""
        v = self.volatility
        elapsed = now - v.last_update
        if elapsed < self.fees.filter_period:
            return v
        reference = (
            v.accumulator * self.fees.reduction_factor // BASIS_POINT_MAX
            if elapsed < self.fees.decay_period
            else 0
        )
        return replace(v, index_reference=self.active_id, reference=reference)

    def _accumulated(self, v: Volatility, bin_id: int) -> Volatility:
        """Per bin crossed: volatility grows with the distance from the reference bin."""
        delta = abs(v.index_reference - bin_id)
        accumulator = min(v.reference + delta * BASIS_POINT_MAX, self.fees.max_volatility_accumulator)
        return replace(v, accumulator=accumulator)

    def to_state(self) -> dict[str, Any]:
        return {
            "bin_step": self.bin_step,
            "active_id": self.active_id,
            "bins": {str(i): [str(x), str(y)] for i, (x, y) in sorted(self.bins.items())},
            "fees": self.fees.__dict__,
            "volatility": self.volatility.__dict__,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> DlmmBook:
        return cls(
            bin_step=int(state["bin_step"]),
            active_id=int(state["active_id"]),
            bins={int(i): (int(x), int(y)) for i, (x, y) in state["bins"].items()},
            fees=FeeParameters(**state["fees"]),
            volatility=Volatility(**state["volatility"]),
        )


@lru_cache(maxsize=65_536)
def bin_price_x64(bin_step: int, bin_id: int) -> int:
    """(1 + binStep/10⁴)^id as Q64.64, rounded down."""
    with localcontext() as ctx:
        ctx.prec = 60
        return int((Decimal(1) + Decimal(bin_step) / BASIS_POINT_MAX) ** bin_id * Q64)


def bin_id_for_price(bin_step: int, price_per_base_unit: Decimal) -> int:
    """The bin whose price is closest to `price_per_base_unit` (Y units per X unit)."""
    with localcontext() as ctx:
        ctx.prec = 40
        ratio = (Decimal(1) + Decimal(bin_step) / BASIS_POINT_MAX).ln()
        return int((price_per_base_unit.ln() / ratio).to_integral_value())


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b) if b else 0


def _amount_in(amount_out: int, price: int, swap_for_y: bool) -> int:
    """Input a bin needs for `amount_out` at its price, rounded up."""
    return _ceil_div(amount_out * Q64, price) if swap_for_y else _ceil_div(amount_out * price, Q64)


def _fee_on_net(amount: int, fee_rate: int) -> int:
    """The fee that, added to `amount`, makes it fee-inclusive: ⌈amount · rate / (10⁹ − rate)⌉
    (the program's compute_fee, dlmm-sdk commons/src/extensions/lb_pair.rs 187-205)."""
    return _ceil_div(amount * fee_rate, FEE_PRECISION - fee_rate)
