"""Driving the simulated market (operator keys only): thin routes over market/controls.py."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends, status

from api.auth import OperatorDep, require_operator
from api.deps import SimulationDep, simulation_only
from core.formatting import format_amount, format_price
from market.schemas import (
    BalanceView,
    CongestionFix,
    CongestionView,
    NewPool,
    PriceMove,
    TokenView,
    WalletTopUp,
)
from market.tokens import decimals_of

router = APIRouter(
    prefix="/sim", tags=["simulation"], dependencies=[Depends(require_operator), Depends(simulation_only)]
)


@router.post("/wallet")
async def top_up_wallet(
    body: WalletTopUp, simulation: SimulationDep, principal: OperatorDep
) -> dict[str, Any]:
    """Add funds to an owner's simulated wallet (the caller's own by default)."""
    owner = body.owner or principal.owner
    token, balance = await simulation.controls.top_up(owner, body.token, Decimal(body.amount))
    return {
        "owner": owner,
        "token": token.symbol,
        "mint": token.mint,
        **BalanceView.of(balance).model_dump(exclude={"token"}),
        "amount": format_amount(balance.total, token.decimals),
    }


@router.post("/pools", status_code=status.HTTP_201_CREATED)
async def list_new_pool(body: NewPool, simulation: SimulationDep) -> dict[str, Any]:
    """List a new token in a pool that opens later (what sniper orders wait for)."""
    pool, token = await simulation.controls.list_pool(
        symbol=body.token,
        decimals=body.decimals,
        quote_symbol=body.quote_token,
        dex=body.dex,
        liquidity=Decimal(body.liquidity),
        price=Decimal(body.price),
        activation_in_s=body.activation_in_s,
    )
    return {
        "pool": pool.pool_id,
        "dex": pool.dex,
        "pair": pool.pair,
        "token": TokenView.of(token).model_dump(),
        "mid_price": format_price(pool.mid_price()),
        "opens_in_s": body.activation_in_s,
    }


@router.post("/price")
async def move_price(body: PriceMove, simulation: SimulationDep) -> dict[str, Any]:
    """Move the pair's pools (or one venue's) by trading against them."""
    moved = await simulation.controls.move_pair(body.pair, body.move_bps, body.dex)
    return {
        "items": [
            {
                "pool": m.pool.pool_id,
                "dex": m.pool.dex,
                "pair": m.pool.pair,
                "mid_price_before": format_price(m.before),
                "mid_price_after": format_price(m.after),
                "token_in": m.token_in,
                "amount_in": format_amount(m.amount_in, decimals_of(m.token_in)),
            }
            for m in moved
        ]
    }


@router.post("/congestion", response_model=CongestionView)
async def fix_congestion(body: CongestionFix, simulation: SimulationDep) -> CongestionView:
    """Hold the chain's congestion at `level` for `duration_s` (then it follows the
    background load again): what landing costs and how long it takes follow."""
    fixed = await simulation.fee_market.fix(body.level, body.duration_s)
    return CongestionView(level=fixed.level, from_slot=fixed.from_slot, until_slot=fixed.until_slot)
