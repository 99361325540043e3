"""An order's landing fields (`priority_fee`, `tip_lamports`, `simulate`) checked and
turned into the typed request the workflow carries, and the landing report as clients
read it (GET /orders/{id}, the CONFIRMED event, `orders show`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from contracts.landing import SIGNATURE_LAMPORTS, LandingReport, LandingRequest, PriorityFeeMode
from contracts.orders import Confirmed
from core.domain import FeeLevel
from core.formatting import format_amount
from orders.errors import InvalidOrder

MIN_TIP_LAMPORTS = 1_000  # the block engine's minimum
MAX_TIP_LAMPORTS = 100_000_000  # 0.1 SOL: more is a typo, not a tip
MAX_PRIORITY_LAMPORTS = 1_000_000_000  # 1 SOL of priority fee per attempt
MAX_MICRO_LAMPORTS_PER_CU = 10_000_000  # 10 lamports per compute unit
LEVELS = ", ".join(f'"{level}"' for level in FeeLevel)


def landing_request(priority_fee: Any, tip_lamports: int | None, simulate: bool) -> LandingRequest:
    """The request, or InvalidOrder (422) naming the field and what it accepts."""
    request = _priority(priority_fee)
    if tip_lamports is not None:
        if not MIN_TIP_LAMPORTS <= tip_lamports <= MAX_TIP_LAMPORTS:
            raise InvalidOrder(
                "invalid_tip",
                "tip_lamports",
                f"a tip is {MIN_TIP_LAMPORTS} to {MAX_TIP_LAMPORTS} lamports (0.1 SOL)",
            )
        request.tip_lamports = tip_lamports
    request.simulate = simulate
    return request


def _priority(value: Any) -> LandingRequest:
    if value == "auto":
        return LandingRequest(PriorityFeeMode.AUTO)
    if value == "none":
        return LandingRequest(PriorityFeeMode.NONE)
    if not isinstance(value, dict):
        raise _bad_priority(
            'must be "auto", "none", {"level": …, "max_lamports": N} or {"micro_lamports_per_cu": N}'
        )
    keys = set(value)
    if keys in ({"level"}, {"level", "max_lamports"}):
        level = value["level"]
        # Any JSON may arrive here: a list or an object is no level (and unhashable).
        if not isinstance(level, str) or level not in {str(level) for level in FeeLevel}:
            raise _bad_priority(f"level must be one of {LEVELS}")
        return LandingRequest(
            PriorityFeeMode.LEVEL,
            level=FeeLevel(level),
            max_lamports=_max_lamports(value.get("max_lamports")),
        )
    if keys in ({"micro_lamports_per_cu"}, {"micro_lamports_per_cu", "max_lamports"}):
        price = value["micro_lamports_per_cu"]
        if not _whole(price) or not 0 <= price <= MAX_MICRO_LAMPORTS_PER_CU:
            raise _bad_priority(
                f"micro_lamports_per_cu must be a whole number from 0 to {MAX_MICRO_LAMPORTS_PER_CU}"
            )
        return LandingRequest(
            PriorityFeeMode.EXACT,
            micro_lamports_per_cu=price,
            max_lamports=_max_lamports(value.get("max_lamports")),
        )
    raise _bad_priority(
        'takes {"level": …} (with an optional "max_lamports") or {"micro_lamports_per_cu": N}, '
        f"not {sorted(keys)}"
    )


def _max_lamports(value: Any) -> int | None:
    if value is None:
        return None
    if not _whole(value) or value > MAX_PRIORITY_LAMPORTS:
        raise _bad_priority(f"max_lamports must be a whole number of lamports up to {MAX_PRIORITY_LAMPORTS}")
    if value < SIGNATURE_LAMPORTS:
        raise InvalidOrder(
            "max_lamports_too_low",
            "priority_fee",
            f"max_lamports must be at least {SIGNATURE_LAMPORTS}, what one signature costs",
        )
    return int(value)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bad_priority(message: str) -> InvalidOrder:
    return InvalidOrder("invalid_priority_fee", "priority_fee", message)


def request_view(request: LandingRequest) -> dict[str, Any]:
    """The request as stored on the order row and shown back (the shape clients send)."""
    priority: Any
    match request.mode:
        case PriorityFeeMode.AUTO | PriorityFeeMode.NONE:
            priority = str(request.mode)
        case PriorityFeeMode.LEVEL:
            priority = {"level": str(request.level)}
        case PriorityFeeMode.EXACT:
            priority = {"micro_lamports_per_cu": request.micro_lamports_per_cu}
    if isinstance(priority, dict) and request.max_lamports is not None:
        priority["max_lamports"] = request.max_lamports
    return {
        "priority_fee": priority,
        "tip_lamports": request.tip_lamports or None,
        "simulate": request.simulate,
    }


def request_of(view: dict[str, Any] | None) -> LandingRequest | None:
    """The stored request back (None: an order accepted before the fee market)."""
    if view is None:
        return None
    return landing_request(view["priority_fee"], view.get("tip_lamports"), view.get("simulate", True))


def execution_view(confirmed: Confirmed, fills: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The fill report of a confirmed order (None when the chain reported no landing)."""
    report: LandingReport | None = confirmed.report
    if report is None:
        return None
    view: dict[str, Any] = {
        "fills": fills,
        "fees": {
            "network_lamports": report.fees.network_lamports,
            "priority_lamports": report.fees.priority_lamports,
            "tip_lamports": report.fees.tip_lamports,
            "total_sol": format_amount(report.fees.total_lamports, 9),
            "rent_lamports": report.fees.rent_lamports,
        },
        "compute_unit_limit": report.compute_unit_limit,
        "compute_units_consumed": report.compute_units_consumed,
        "micro_lamports_per_cu": report.micro_lamports_per_cu,
        "sent_slot": report.sent_slot,
        "landed_slot": report.landed_slot,
        "expected_amount_out": None,
        "realized_slippage_bps": None,
        "sandwiched": report.sandwiched,
    }
    expected = confirmed.expected_amount_out
    if expected:
        view["expected_amount_out"] = format_amount(expected, confirmed.decimals_out)
        # Expected at routing vs filled; positive when it filled worse.
        shortfall = Decimal(expected - confirmed.amount_out) * 10_000 / expected
        view["realized_slippage_bps"] = int(shortfall.to_integral_value())
    return view
