"""What every venue's pool answers for a swap, shared by market/pools.py and the venues'
own pool modules (market/cpmm.py) so neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from core.domain import Dex

BPS = 10_000


@dataclass(frozen=True)
class SwapResult:
    amount_in: int
    amount_out: int
    fee: int  # in units of the input token
    fee_bps: int
    price_impact_bps: int
    complete: bool = True  # False: the pool cannot fill this swap at all (a DLMM out of bins)
    bins_crossed: int = 0  # DLMM: bins the swap moved through (what compute units charge)


class TransferFeeModel(Protocol):
    """A token's transfer fee (Token-2022; onchain/spl.py's TransferFee): what a
    transfer of an amount loses on the way, and the least transfer that delivers one."""

    def fee_on(self, amount: int) -> int: ...

    def amount_before_fee(self, received: int) -> int: ...


class NamedPool:
    dex: Dex
    base: str
    quote: str

    @property
    def pool_id(self) -> str:
        return f"{self.dex}:{self.base}/{self.quote}"

    @property
    def pair(self) -> str:
        return f"{self.base}/{self.quote}"


def impact_bps(amount_out: int, ideal_out: float) -> int:
    """How far `amount_out` falls short of the output at the mid price, in bps."""
    if ideal_out <= 0:
        return 0
    return max(round((1 - amount_out / ideal_out) * BPS), 0)
