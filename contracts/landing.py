"""How an order's transaction lands, and what landing it cost: the order's landing
request (priority fee, tip, simulation), carried by the workflow to the build and submit
steps, and the report the chain gives back. Shared by workflows, activities and the
chain; read back from recorded histories, so fields only ever grow (with defaults)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from core.domain import FeeLevel

SIGNATURE_LAMPORTS = 5_000  # the base fee of one signature
# What one attempt may pay in priority fees when the order names no max_lamports:
# 0.001 SOL, well above the very_high level at full congestion (≈ 200 000 lamports).
DEFAULT_MAX_PRIORITY_LAMPORTS = 1_000_000
# An order reserves the fees of this many attempts (the most it can make).
FEE_BUDGET_ATTEMPTS = 3
# Each attempt after one that did not land pays this much more per compute unit.
ESCALATION = 1.5


class PriorityFeeMode(StrEnum):
    AUTO = "auto"  # the medium level of recent fees
    LEVEL = "level"  # a named level, capped by max_lamports
    EXACT = "exact"  # micro_lamports_per_cu as given
    NONE = "none"  # no priority fee at all


@dataclass
class LandingRequest:
    """What the order asked for (POST /orders `priority_fee`, `tip_lamports`, `simulate`)."""

    mode: PriorityFeeMode = PriorityFeeMode.AUTO
    level: FeeLevel = FeeLevel.MEDIUM
    max_lamports: int | None = None  # the most priority fee one attempt pays
    micro_lamports_per_cu: int | None = None  # EXACT only
    tip_lamports: int = 0  # > 0: the block engine's private path
    simulate: bool = True

    @property
    def max_priority_lamports(self) -> int:
        if self.mode is PriorityFeeMode.NONE:
            return 0
        return self.max_lamports if self.max_lamports is not None else DEFAULT_MAX_PRIORITY_LAMPORTS

    @property
    def fee_budget_lamports(self) -> int:
        """The most every attempt together can pay: what placement reserves in SOL."""
        return FEE_BUDGET_ATTEMPTS * (SIGNATURE_LAMPORTS + self.max_priority_lamports + self.tip_lamports)


@dataclass
class Fees:
    """What a landed transaction paid, in lamports."""

    network_lamports: int = 0
    priority_lamports: int = 0
    tip_lamports: int = 0
    # A real chain: lamports deposited as rent into token accounts the transaction
    # created (the output's account, say). Not a fee, but spent; not in the total.
    rent_lamports: int = 0

    @property
    def total_lamports(self) -> int:
        return self.network_lamports + self.priority_lamports + self.tip_lamports


@dataclass
class LandingReport:
    """How the order's transaction landed (from the chain)."""

    fees: Fees
    compute_unit_limit: int
    compute_units_consumed: int
    micro_lamports_per_cu: int
    sent_slot: int
    landed_slot: int
    sandwiched: bool = False
