"""A planned route as orders carry it, with their bounds: the least an exact-in order
accepts, the most an exact-out order spends."""

from __future__ import annotations

from contracts.orders import RouteDecision, RouteLeg
from core.domain import SwapMode
from market.routing import RoutePlan

BPS = 10_000


def minimum_out(expected: int, slippage_bps: int) -> int:
    """The least an order may receive: expected less the slippage, rounded down, but
    never 0 for an order that expects anything (a dust order would accept nothing)."""
    if expected <= 0:
        return 0
    return max(expected * (BPS - slippage_bps) // BPS, 1)


def route_decision(
    plan: RoutePlan, slippage_bps: int, min_amount_out: int | None = None, max_amount_in: int | None = None
) -> RouteDecision:
    """The plan as the workflow carries it, with the order's bounds: at least the
    minimum (exact-in), at most the maximum (exact-out), the quote's when it had one."""
    legs = [
        RouteLeg(
            leg.dex,
            leg.amount_in,
            leg.amount_out,
            leg.pool,
            leg.token_in,
            leg.token_out,
            leg.hop,
            leg.share_bps,
            leg.fee_amount,
        )
        for leg in plan.legs
    ]
    if plan.mode is SwapMode.EXACT_OUT:
        most = maximum_in(plan.amount_in, slippage_bps)
        if max_amount_in is not None:
            most = max_amount_in
        return RouteDecision(
            plan.selected_dex,
            legs,
            plan.amount_out,
            plan.amount_out,
            SwapMode.EXACT_OUT,
            plan.amount_in,
            most,
        )
    least = minimum_out(plan.amount_out, slippage_bps)
    if min_amount_out is not None:
        least = max(least, min_amount_out)
    return RouteDecision(plan.selected_dex, legs, plan.amount_out, least)


def maximum_in(expected: int, slippage_bps: int) -> int:
    """The most an exact-out order may spend: expected plus the slippage, rounded up."""
    return -(-expected * (BPS + slippage_bps) // BPS)
