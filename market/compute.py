"""Compute units: what the simulated runtime charges a swap transaction, and the limit a
transaction asks for (SetComputeUnitLimit), estimated from its route.

Charged, roughly as on mainnet: a fixed part (signature checks, the compute-budget and
memo instructions), wrapping or unwrapping native SOL, and each leg: a constant-product
swap costs the same whatever its size, a DLMM swap more for every bin it crosses.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from core.domain import Dex

MAX_COMPUTE_UNITS = 1_400_000  # Solana's per-transaction ceiling
BASE_UNITS = 12_000
WRAP_UNITS = 6_000  # wrap SOL into wSOL, or close the wSOL account
LEG_UNITS = {Dex.RAYDIUM: 42_000, Dex.METEORA: 32_000}
BIN_UNITS = 8_000  # per DLMM bin crossed
# The estimate allows for the pool moving between routing and landing: one more bin per
# DLMM leg, then 15 % on top, rounded up to a thousand.
EXTRA_BINS = 1
MARGIN = 1.15


def units_consumed(legs: Iterable[tuple[str, int]], wraps: int) -> int:
    """What the runtime charges for `legs` ((dex, bins crossed) each) and `wraps`."""
    return (
        BASE_UNITS
        + WRAP_UNITS * wraps
        + sum(LEG_UNITS[Dex(dex)] + (BIN_UNITS * bins if dex == Dex.METEORA else 0) for dex, bins in legs)
    )


def estimate_limit(legs: Iterable[tuple[str, int]], wraps: int) -> int:
    """The SetComputeUnitLimit for a route whose legs cross these bins at routing time."""
    padded = [(dex, bins + EXTRA_BINS if dex == Dex.METEORA else bins) for dex, bins in legs]
    return min(MAX_COMPUTE_UNITS, math.ceil(units_consumed(padded, wraps) * MARGIN / 1000) * 1000)


def wraps_of(token_in: str, token_out: str) -> int:
    """Native SOL is wrapped when it goes in, and unwrapped when it comes out."""
    return (token_in == "SOL") + (token_out == "SOL")
