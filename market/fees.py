"""The simulated chain's fee market: congestion per slot, the priority fees landed
transactions paid, the chance that a transaction lands, what it costs, and who front-runs
it. Pure functions of (seed, slot, congestion, …): every process computes the same.

The model, in short (docs/market.md has it with figures):
- congestion(slot) = 0.1 + 0.08 · background trades per second + 0.15 · sin(2π·slot/750),
  clamped to [0, 1]; an operator may fix it for a while (POST /sim/congestion).
- Priority fees landed in a slot are log-normal around m(c) = 2 000 + 200 000 · c²
  micro-lamports per compute unit (σ = 1); the fee levels low/medium/high/very_high are
  their p25/p50/p75/p95 over the last LEVEL_WINDOW_SLOTS slots.
- A public transaction paying p lands in a slot with probability
  P = max(0.05·(1 − c), (1 − 0.7·c) / (1 + ((p + 1)/m)^−1.5)), rising with p and falling
  with c; a tipped one (the block engine's private path) lands in the next slot with 0.75,
  and surely in the one after.
- A landed transaction pays 5 000 lamports per signature + ⌈CU limit × p / 10⁶⌉ + its tip,
  also when it fails on chain; one that never lands pays nothing.
- The price p of an attempt: the level's fee (or the exact price asked), × 1.5 for each
  earlier attempt of the order that did not land, capped so that the priority fee stays
  within max_lamports.
- Who front-runs public transactions, and how hard: market/searchers.py.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass

from contracts.landing import ESCALATION, SIGNATURE_LAMPORTS, Fees, LandingRequest, PriorityFeeMode
from core.domain import FeeLevel

LAMPORTS_PER_SOL = 10**9
MAX_COMPUTE_UNITS = 1_400_000  # Solana's per-transaction limit
LEVEL_WINDOW_SLOTS = 20
SAMPLES_PER_SLOT = 24
LEVEL_PERCENTILES = {FeeLevel.LOW: 25, FeeLevel.MEDIUM: 50, FeeLevel.HIGH: 75, FeeLevel.VERY_HIGH: 95}
WAVE_SLOTS = 750  # congestion's background wave: 5 minutes of 400 ms slots


@dataclass(frozen=True)
class FeeLevels:
    """Recent priority fees (micro-lamports per compute unit) at the four levels."""

    slot: int
    congestion: float
    low: int
    medium: int
    high: int
    very_high: int

    def at(self, level: FeeLevel) -> int:
        return {FeeLevel.LOW: self.low, FeeLevel.MEDIUM: self.medium, FeeLevel.HIGH: self.high}.get(
            level, self.very_high
        )


def background_congestion(slot: int, trades_per_s: float) -> float:
    """Congestion that follows the other traders' load, with a slow wave."""
    wave = math.sin(2 * math.pi * slot / WAVE_SLOTS)
    return min(1.0, max(0.0, 0.1 + 0.08 * trades_per_s + 0.15 * wave))


def median_fee(congestion: float) -> float:
    """The median priority fee landed at `congestion` (micro-lamports per CU)."""
    return 2_000 + 200_000 * congestion**2


def slot_fees(seed: int, slot: int, congestion: float) -> list[float]:
    """The priority fees of the other transactions that landed in `slot`."""
    rng = random.Random(_slot_seed(seed, slot))
    median = median_fee(congestion)
    return [median * math.exp(rng.gauss(0, 1)) for _ in range(SAMPLES_PER_SLOT)]


def fee_levels(seed: int, slot: int, congestion_of: Mapping[int, float]) -> FeeLevels:
    """The fee levels at `slot`: percentiles of the priority fees that landed in the last
    LEVEL_WINDOW_SLOTS slots."""
    landed: list[float] = []
    for past in range(slot - LEVEL_WINDOW_SLOTS + 1, slot + 1):
        landed += slot_fees(seed, past, congestion_of[past])
    landed.sort()
    values = {level: round(_percentile(landed, q)) for level, q in LEVEL_PERCENTILES.items()}
    return FeeLevels(
        slot,
        congestion_of[slot],
        values[FeeLevel.LOW],
        values[FeeLevel.MEDIUM],
        values[FeeLevel.HIGH],
        values[FeeLevel.VERY_HIGH],
    )


def landing_probability(price: int, congestion: float, tipped: bool, slots_waited: int) -> float:
    """The chance that a sent transaction lands in the next slot."""
    if tipped:
        return 1.0 if slots_waited >= 1 else 0.75
    median = median_fee(congestion)
    priced = (1 - 0.7 * congestion) / (1 + float(((price + 1) / median) ** -1.5))
    return min(0.98, max(0.05 * (1 - congestion), priced))


def fee(compute_unit_limit: int, micro_lamports_per_cu: int, tip_lamports: int, signatures: int = 1) -> Fees:
    """What a transaction pays when it lands (whether it then succeeds or fails)."""
    priority = -(-compute_unit_limit * micro_lamports_per_cu // 1_000_000)
    return Fees(SIGNATURE_LAMPORTS * signatures, priority, tip_lamports)


def compute_unit_price(
    request: LandingRequest, levels: FeeLevels, compute_unit_limit: int, escalation: int
) -> int:
    """Micro-lamports per compute unit for an attempt that follows `escalation` attempts
    that did not land; the priority fee it makes stays within the order's cap."""
    if request.mode is PriorityFeeMode.NONE:
        return 0
    if request.mode is PriorityFeeMode.EXACT:
        base = request.micro_lamports_per_cu or 0
    else:
        base = levels.at(FeeLevel.MEDIUM if request.mode is PriorityFeeMode.AUTO else request.level)
    price = int(base * ESCALATION**escalation)
    cap = request.max_priority_lamports * 1_000_000 // max(compute_unit_limit, 1)
    return min(price, cap)


def _slot_seed(seed: int, slot: int) -> int:
    return int.from_bytes(hashlib.sha256(f"fees {seed} {slot}".encode()).digest()[:8], "big")


def _percentile(ordered: list[float], q: float) -> float:
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
