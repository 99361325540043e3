"""Raydium CPMM (raydium-io/raydium-cp-swap) swap math, to the base unit as the program
computes it, and `CpmmPool`, a pool the router trades like any other.

Source (programs/cp-swap/src, commit 609780f):
- curve/fees.rs 7-26: `ceil_div` / `floor_div`; 30-36 the trade fee rounds up; 39-54 the
  protocol and fund fees (shares of the trade fee) round down; 57-63 the creator fee
  rounds up; 65-75 the creator's share of a combined fee rounds down; 77-90 the gross-up
  of exact-out amounts (`calculate_pre_fee_amount`) rounds up.
- curve/constant_product.rs 19-30: exact-in output ⌊Δx · y / (x + Δx)⌋; 32-43 exact-out
  input ⌈x · Δy / (y − Δy)⌉ (utils/math.rs 18-27).
- curve/calculator.rs 95-143 `swap_base_input`, 145-201 `swap_base_output`.
- states/pool.rs 200-221: the curve's reserves are the vaults less the protocol, fund and
  creator fees owed; 253-261 the creator fee's side; 318-324 it is zero unless the pool
  enables it; 326-369 which side each fee is owed in (protocol and fund: the input).

Token-2022 transfer fees (utils/token.rs) are not modelled: amounts are what the vaults
receive and pay.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from enum import IntEnum
from typing import Any

from core.domain import Dex
from core.formatting import format_amount
from market.swaps import BPS, NamedPool, SwapResult, impact_bps
from market.tokens import Token

FEE_RATE_DENOMINATOR = 1_000_000  # curve/fees.rs 3: rates are in millionths
U64_MAX = 2**64 - 1


class CreatorFeeOn(IntEnum):
    """Which token the creator fee is taken in (states/pool.rs 24-52)."""

    BOTH_TOKEN = 0  # the input token, whichever it is
    ONLY_TOKEN_0 = 1
    ONLY_TOKEN_1 = 2


@dataclass(frozen=True)
class CpmmFeeRates:
    """An AmmConfig's rates, in millionths; `creator_fee_rate` is the pool's effective one
    (zero unless the pool enables the creator fee)."""

    trade_fee_rate: int
    protocol_fee_rate: int
    fund_fee_rate: int
    creator_fee_rate: int = 0


@dataclass(frozen=True)
class CpmmSwap:
    """One swap as the program computes it (calculator.rs `SwapResult`)."""

    amount_in: int  # what the user pays
    amount_out: int  # what the user receives
    curve_in: int  # what enters the curve: the input less the trade (and input creator) fee
    curve_out: int  # what leaves the curve: the output plus an output-side creator fee
    trade_fee: int  # input token
    protocol_fee: int  # input token, share of trade_fee
    fund_fee: int  # input token, share of trade_fee
    creator_fee: int  # input token if creator_fee_on_input, else output token
    creator_fee_on_input: bool


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def _pre_fee_amount(post_fee_amount: int, fee_rate: int) -> int:
    """fees.rs 77-90: the smallest amount whose fee-less part covers `post_fee_amount`."""
    if fee_rate == 0:
        return post_fee_amount
    return _ceil_div(post_fee_amount * FEE_RATE_DENOMINATOR, FEE_RATE_DENOMINATOR - fee_rate)


def swap_base_input(
    amount_in: int, reserve_in: int, reserve_out: int, rates: CpmmFeeRates, creator_fee_on_input: bool
) -> CpmmSwap | None:
    """calculator.rs 95-143. None where the program fails (nothing to swap, no reserves)."""
    if not 0 < amount_in <= U64_MAX or reserve_in <= 0 or reserve_out <= 0:
        return None  # the instruction's amount_in is a u64 (lib.rs 270-274)
    if creator_fee_on_input and rates.trade_fee_rate + rates.creator_fee_rate == 0:
        return None  # fees.rs 19-22: the split divides by the combined rate
    creator_fee = 0
    if creator_fee_on_input:
        # One fee at the combined rate, rounded up, split with the creator's share rounded
        # down (calculator.rs 108-112, fees.rs 65-75).
        total_fee = _ceil_div(
            amount_in * (rates.trade_fee_rate + rates.creator_fee_rate), FEE_RATE_DENOMINATOR
        )
        creator_fee = total_fee * rates.creator_fee_rate // (rates.trade_fee_rate + rates.creator_fee_rate)
        trade_fee = total_fee - creator_fee
    else:
        total_fee = trade_fee = _ceil_div(amount_in * rates.trade_fee_rate, FEE_RATE_DENOMINATOR)
    curve_in = amount_in - total_fee
    protocol_fee = trade_fee * rates.protocol_fee_rate // FEE_RATE_DENOMINATOR
    fund_fee = trade_fee * rates.fund_fee_rate // FEE_RATE_DENOMINATOR
    curve_out = curve_in * reserve_out // (reserve_in + curve_in)  # rounded down
    amount_out = curve_out
    if not creator_fee_on_input:
        creator_fee = _ceil_div(curve_out * rates.creator_fee_rate, FEE_RATE_DENOMINATOR)
        amount_out = curve_out - creator_fee
    return CpmmSwap(
        amount_in,
        amount_out,
        curve_in,
        curve_out,
        trade_fee,
        protocol_fee,
        fund_fee,
        creator_fee,
        creator_fee_on_input,
    )


def swap_base_output(
    amount_out: int, reserve_in: int, reserve_out: int, rates: CpmmFeeRates, creator_fee_on_input: bool
) -> CpmmSwap | None:
    """calculator.rs 145-201. None where the program fails: the curve cannot pay
    `amount_out` (plus an output-side creator fee), or the input exceeds a u64."""
    if amount_out <= 0 or reserve_in <= 0:
        return None
    if creator_fee_on_input and rates.trade_fee_rate + rates.creator_fee_rate == 0:
        return None  # fees.rs 19-22: the split divides by the combined rate
    curve_out = amount_out
    creator_fee = 0
    if not creator_fee_on_input:
        curve_out = _pre_fee_amount(amount_out, rates.creator_fee_rate)
        creator_fee = curve_out - amount_out
    if curve_out >= reserve_out:  # constant_product.rs 40-41: y − Δy must stay positive
        return None
    curve_in = _ceil_div(reserve_in * curve_out, reserve_out - curve_out)
    if creator_fee_on_input:
        amount_in = _pre_fee_amount(curve_in, rates.trade_fee_rate + rates.creator_fee_rate)
        total_fee = amount_in - curve_in
        creator_fee = total_fee * rates.creator_fee_rate // (rates.trade_fee_rate + rates.creator_fee_rate)
        trade_fee = total_fee - creator_fee
    else:
        amount_in = _pre_fee_amount(curve_in, rates.trade_fee_rate)
        trade_fee = amount_in - curve_in
    if amount_in > U64_MAX:
        return None
    return CpmmSwap(
        amount_in,
        amount_out,
        curve_in,
        curve_out,
        trade_fee,
        trade_fee * rates.protocol_fee_rate // FEE_RATE_DENOMINATOR,
        trade_fee * rates.fund_fee_rate // FEE_RATE_DENOMINATOR,
        creator_fee,
        creator_fee_on_input,
    )


def creator_fee_on_input(creator_fee_on: CreatorFeeOn, zero_for_one: bool) -> bool:
    """states/pool.rs 253-261."""
    if creator_fee_on == CreatorFeeOn.BOTH_TOKEN:
        return True
    return (creator_fee_on == CreatorFeeOn.ONLY_TOKEN_0) == zero_for_one


@dataclass(frozen=True)
class CpmmPool(NamedPool):
    """A Raydium CPMM pool: token 0 is `base`, token 1 is `quote`. Amounts in base units.

    The vaults hold the curve's reserves plus the fees owed to the protocol, the fund and
    the creator (`owed_*`); only the difference trades (states/pool.rs 200-221).
    """

    dex: Dex
    base: str
    quote: str
    vault_base: int
    vault_quote: int
    rates: CpmmFeeRates
    base_decimals: int
    quote_decimals: int
    owed_base: int = 0
    owed_quote: int = 0
    creator_fee_on: CreatorFeeOn = CreatorFeeOn.BOTH_TOKEN
    swap_enabled: bool = True  # status bit 2 clear (states/pool.rs 93-97)
    opens_at: float = 0.0  # open_time: the program refuses swaps before it
    listed: tuple[Token, ...] = ()
    address: str = ""  # the pool_state account

    @property
    def reserve_base(self) -> int:
        return self.vault_base - self.owed_base

    @property
    def reserve_quote(self) -> int:
        return self.vault_quote - self.owed_quote

    @property
    def fee_bps(self) -> int:
        """Trade plus creator fee, in bps (a millionth is a hundredth of a bp)."""
        return round((self.rates.trade_fee_rate + self.rates.creator_fee_rate) / 100)

    def marginal_fee_bps(self, now: float) -> Decimal:
        return Decimal(self.rates.trade_fee_rate + self.rates.creator_fee_rate) / 100

    def mid_price(self) -> Decimal:
        """Quote token per base token, in human units."""
        if self.reserve_base <= 0:
            return Decimal(0)
        return (Decimal(self.reserve_quote) / Decimal(self.reserve_base)).scaleb(
            self.base_decimals - self.quote_decimals
        )

    def quote_swap(self, token_in: str, amount_in: int, now: float = 0) -> SwapResult:
        return self.swap(token_in, amount_in, now)[0]

    def swap(self, token_in: str, amount_in: int, now: float = 0) -> tuple[SwapResult, CpmmPool]:
        zero_for_one = self._zero_for_one(token_in)
        if amount_in <= 0:
            return SwapResult(0, 0, 0, self.fee_bps, 0), self
        reserve_in, reserve_out = self._reserves(zero_for_one)
        swap = (
            swap_base_input(amount_in, reserve_in, reserve_out, self.rates, self._on_input(zero_for_one))
            if self.swap_enabled
            else None
        )
        if swap is None:
            return SwapResult(amount_in, 0, 0, self.fee_bps, BPS, complete=False), self
        if swap.amount_out <= 0:  # the program refuses a swap that pays nothing
            return SwapResult(amount_in, 0, swap.amount_in - swap.curve_in, self.fee_bps, BPS), self
        return self._result(swap, reserve_in, reserve_out), self.after(swap, zero_for_one)

    def swap_exact_out(self, token_in: str, amount_out: int, now: float = 0) -> tuple[SwapResult, CpmmPool]:
        """swap_base_output: the least input that pays `amount_out`. Incomplete when the
        pool cannot pay it."""
        zero_for_one = self._zero_for_one(token_in)
        if amount_out <= 0:
            return SwapResult(0, 0, 0, self.fee_bps, 0), self
        reserve_in, reserve_out = self._reserves(zero_for_one)
        swap = (
            swap_base_output(amount_out, reserve_in, reserve_out, self.rates, self._on_input(zero_for_one))
            if self.swap_enabled
            else None
        )
        if swap is None:
            return SwapResult(0, 0, 0, self.fee_bps, BPS, complete=False), self
        return self._result(swap, reserve_in, reserve_out), self.after(swap, zero_for_one)

    def after(self, swap: CpmmSwap, zero_for_one: bool) -> CpmmPool:
        """The pool once `swap` landed: the vaults move by what the user paid and received;
        the input side owes the protocol and fund fees, and one side the creator fee
        (states/pool.rs 326-369)."""
        owed_in = swap.protocol_fee + swap.fund_fee + (swap.creator_fee if swap.creator_fee_on_input else 0)
        owed_out = 0 if swap.creator_fee_on_input else swap.creator_fee
        if zero_for_one:
            return replace(
                self,
                vault_base=self.vault_base + swap.amount_in,
                vault_quote=self.vault_quote - swap.amount_out,
                owed_base=self.owed_base + owed_in,
                owed_quote=self.owed_quote + owed_out,
            )
        return replace(
            self,
            vault_quote=self.vault_quote + swap.amount_in,
            vault_base=self.vault_base - swap.amount_out,
            owed_quote=self.owed_quote + owed_in,
            owed_base=self.owed_base + owed_out,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "raydium_cpmm",
            "address": self.address,
            "reserves": {
                self.base: format_amount(self.reserve_base, self.base_decimals),
                self.quote: format_amount(self.reserve_quote, self.quote_decimals),
            },
            "fees_owed": {
                self.base: format_amount(self.owed_base, self.base_decimals),
                self.quote: format_amount(self.owed_quote, self.quote_decimals),
            },
            "trade_fee_rate": self.rates.trade_fee_rate,
            "swap_enabled": self.swap_enabled,
        }

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": "raydium_cpmm",
            "dex": self.dex,
            "base": self.base,
            "quote": self.quote,
            "vault_base": str(self.vault_base),
            "vault_quote": str(self.vault_quote),
            "owed_base": str(self.owed_base),
            "owed_quote": str(self.owed_quote),
            "trade_fee_rate": self.rates.trade_fee_rate,
            "protocol_fee_rate": self.rates.protocol_fee_rate,
            "fund_fee_rate": self.rates.fund_fee_rate,
            "creator_fee_rate": self.rates.creator_fee_rate,
            "creator_fee_on": int(self.creator_fee_on),
            "base_decimals": self.base_decimals,
            "quote_decimals": self.quote_decimals,
            "swap_enabled": self.swap_enabled,
            "address": self.address,
            "opens_at": self.opens_at,
            "listed": [t.__dict__ for t in self.listed],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], listed: tuple[Token, ...] = ()) -> CpmmPool:
        return cls(
            dex=Dex(state["dex"]),
            base=str(state["base"]),
            quote=str(state["quote"]),
            vault_base=int(state["vault_base"]),
            vault_quote=int(state["vault_quote"]),
            rates=CpmmFeeRates(
                int(state["trade_fee_rate"]),
                int(state["protocol_fee_rate"]),
                int(state["fund_fee_rate"]),
                int(state["creator_fee_rate"]),
            ),
            base_decimals=int(state["base_decimals"]),
            quote_decimals=int(state["quote_decimals"]),
            owed_base=int(state["owed_base"]),
            owed_quote=int(state["owed_quote"]),
            creator_fee_on=CreatorFeeOn(int(state["creator_fee_on"])),
            swap_enabled=bool(state["swap_enabled"]),
            opens_at=float(state.get("opens_at", 0.0)),
            listed=listed,
            address=str(state.get("address", "")),
        )

    def _zero_for_one(self, token_in: str) -> bool:
        if token_in == self.base:
            return True
        if token_in == self.quote:
            return False
        raise ValueError(f"{token_in} is not traded in {self.pool_id}")

    def _reserves(self, zero_for_one: bool) -> tuple[int, int]:
        if zero_for_one:
            return self.reserve_base, self.reserve_quote
        return self.reserve_quote, self.reserve_base

    def _on_input(self, zero_for_one: bool) -> bool:
        return creator_fee_on_input(self.creator_fee_on, zero_for_one)

    def _result(self, swap: CpmmSwap, reserve_in: int, reserve_out: int) -> SwapResult:
        input_fee = swap.amount_in - swap.curve_in  # trade fee, plus the creator's when on input
        ideal_out = swap.curve_in * reserve_out / reserve_in
        return SwapResult(
            swap.amount_in, swap.amount_out, input_fee, self.fee_bps, impact_bps(swap.curve_out, ideal_out)
        )
