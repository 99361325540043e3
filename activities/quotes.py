"""Quoting the venues and choosing the route (short steps: run as local activities)."""

from __future__ import annotations

import logging

from temporalio import activity

from activities.attempts import run_attempt
from activities.records import OrderRecords
from contracts.orders import (
    PlanRequest,
    PlanResult,
    QuoteRequest,
    QuoteResult,
    RouteDecision,
    RouteLeg,
    RouteRequest,
)
from core.formatting import format_amount
from market.errors import MarketError, MarketErrorCode
from market.router import best_route, split_points
from market.routing import NoRoute
from market.tokens import find_token
from market.venues import Planned, Venues
from orders.routes import minimum_out, route_decision

log = logging.getLogger(__name__)
BPS = 10_000


class QuoteActivities:
    def __init__(self, venues: Venues, records: OrderRecords) -> None:
        self._venues = venues
        self._records = records

    @activity.defn
    async def quote(self, request: QuoteRequest) -> QuoteResult:
        """One venue's quote for the order's exact-in amount."""
        quote = await run_attempt(
            self._records,
            self._venues.quote(
                request.dex,
                request.token_in,
                request.token_out,
                request.amount_in,
                split_points(request.amount_in),
            ),
            order_id=request.order_id,
            activity_name=f"quote_{request.dex}",
            attempt=activity.info().attempt,
        )
        return QuoteResult(
            dex=request.dex,
            amount_in=request.amount_in,
            amount_out=quote.result.amount_out,
            min_amount_out=minimum_out(quote.result.amount_out, request.slippage_bps),
            fee_bps=quote.result.fee_bps,
            price_impact_bps=quote.result.price_impact_bps,
            slot=quote.slot,
            curve=[[amount, out] for amount, out in sorted(quote.curve.items())],
        )

    @activity.defn
    async def plan_route(self, request: PlanRequest) -> PlanResult:
        """Both venues asked at once, then the best route across them: direct or through
        other tokens (up to `max_hops`), split at each hop, exact-in or exact-out."""
        planned = await run_attempt(
            self._records,
            self._plan(request),
            order_id=request.order_id,
            activity_name="plan_route",
            attempt=activity.info().attempt,
        )
        decision = route_decision(
            planned.plan, request.slippage_bps, request.min_amount_out, request.max_amount_in
        )
        quotes = [
            QuoteResult(
                dex=pool.dex,
                amount_in=result.amount_in,
                amount_out=result.amount_out,
                min_amount_out=minimum_out(result.amount_out, request.slippage_bps),
                fee_bps=result.fee_bps,
                price_impact_bps=result.price_impact_bps,
                slot=planned.slot,
                curve=[],
            )
            for pool, result in planned.direct
        ]
        log.info(plan_line(request, decision))
        return PlanResult(quotes, decision)

    async def _plan(self, request: PlanRequest) -> Planned:
        try:
            return await self._venues.plan(
                request.token_in,
                request.token_out,
                request.amount,
                mode=request.swap_mode,
                max_hops=request.max_hops,
                dexes=request.dexes,
            )
        except NoRoute as none:
            code = MarketErrorCode.POOL_NOT_FOUND
            if none.liquidity:
                code = MarketErrorCode.INSUFFICIENT_LIQUIDITY
            elif none.not_open:
                code = MarketErrorCode.POOL_NOT_OPEN
            raise MarketError(code, str(none)) from None

    @activity.defn
    async def route_order(self, request: RouteRequest) -> RouteDecision:
        """The route with the most output net of fees and impact; logs one [ROUTER] line."""
        curves = {q.dex: {amount: out for amount, out in q.curve} for q in request.quotes}
        route = best_route({dex: curve.__getitem__ for dex, curve in curves.items()}, request.amount_in)
        expected = route.amount_out
        decision = RouteDecision(
            selected_dex=route.selected_dex,
            legs=[RouteLeg(leg.dex, leg.amount_in, leg.amount_out) for leg in route.legs],
            expected_amount_out=expected,
            min_amount_out=minimum_out(expected, request.slippage_bps),
        )
        log.info(router_line(request, decision))
        return decision


def plan_line(request: PlanRequest, decision: RouteDecision) -> str:
    """`[ROUTER] ord_… exact_in BONK→SOL→USDC: meteora 80% + raydium 20% | meteora`"""
    hops: dict[int, list[RouteLeg]] = {}
    for leg in decision.legs:
        hops.setdefault(leg.hop, []).append(leg)
    path = [request.token_in] + [legs[0].token_out or request.token_out for _, legs in sorted(hops.items())]
    shares = " | ".join(
        " + ".join(f"{leg.dex} {leg.share_bps / 100:.0f}%" for leg in legs)
        for _, legs in sorted(hops.items())
    )
    return f"[ROUTER] {request.order_id} {request.swap_mode} {'→'.join(path)}: {shares}"


def router_line(request: RouteRequest, decision: RouteDecision) -> str:
    """`[ROUTER] ord_… selected raydium | raydium=151.23 meteora=150.88 USDC`"""
    token_out = find_token(request.token_out)
    decimals = token_out.decimals if token_out else 0
    selected = decision.selected_dex
    if selected == "split":
        shares = " / ".join(
            f"{leg.dex} {round(100 * leg.amount_in / request.amount_in)}%" for leg in decision.legs
        )
        selected = f"split ({shares})"
    outs = [f"{q.dex}={format_amount(q.amount_out, decimals)}" for q in request.quotes]
    if decision.selected_dex == "split":
        outs.append(f"split={format_amount(decision.expected_amount_out, decimals)}")
    return f"[ROUTER] {request.order_id} selected {selected} | {' '.join(outs)} {request.token_out}"
