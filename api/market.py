"""The simulated market: tokens, pools, the chain's executed transactions, the wallet."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from accounts.keys import NAME_PATTERN
from api.auth import KeyDep
from api.deps import MarketDep
from core.errors import InvalidInput
from core.ids import is_order_id
from market.schemas import (
    FeeLevelsView,
    FeesResponse,
    Items,
    TokenView,
    WalletResponse,
    pool_view,
    transaction_view,
)
from market.tokens import TOKENS, find_token

router = APIRouter(tags=["market"])


@router.get("/tokens", response_model=Items)
async def list_tokens(market: MarketDep) -> dict[str, Any]:
    """Tokens that can be traded, by symbol or mint (with those listed through /sim/pools;
    on a real cluster, the venues file's tokens that a pool trades)."""
    pools = await market.pools.all()
    if market.simulation is None:
        symbols = dict.fromkeys(symbol for pool in pools for symbol in (pool.base, pool.quote))
        traded = [token for symbol in symbols if (token := find_token(symbol)) is not None]
        return {"items": [TokenView.of(t).model_dump() for t in traded]}
    listed = [token for pool in pools for token in pool.listed]
    return {"items": [TokenView.of(t).model_dump() for t in (*TOKENS, *listed)]}


@router.get("/markets", response_model=Items)
async def list_markets(market: MarketDep) -> dict[str, Any]:
    """Every pool with its mid price (quote token per base token), fee and reserves."""
    return {"items": [pool_view(pool) for pool in await market.pools.all()]}


@router.get("/fees", response_model=FeesResponse)
async def recent_fees(market: MarketDep, principal: KeyDep) -> FeesResponse:
    """Recent priority fees of landed transactions (micro-lamports per compute unit) at
    the four levels an order's `priority_fee` may name, with the slot and congestion."""
    levels = await market.fees.levels()
    return FeesResponse(
        slot=levels.slot,
        congestion=round(levels.congestion, 4),
        micro_lamports_per_cu=FeeLevelsView(
            low=levels.low, medium=levels.medium, high=levels.high, very_high=levels.very_high
        ),
    )


@router.get("/chain/transactions", response_model=Items)
async def list_transactions(
    market: MarketDep,
    principal: KeyDep,
    order_id: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Transactions of your orders executed on the simulated chain, newest first; one per
    order at most. An operator key sees every transaction, other traders' included."""
    if order_id is not None and not is_order_id(order_id):
        raise InvalidInput("invalid_order_id", "order_id", "not an order id (ord_…)")
    owner = principal.owner_scope(None, "transactions")
    rows = await market.ledger.recent(owner=owner, order_id=order_id, limit=limit)
    return {"items": [transaction_view(tx) for tx in rows]}


@router.get("/wallet", response_model=WalletResponse)
async def wallet(
    market: MarketDep,
    principal: KeyDep,
    owner: Annotated[
        str | None, Query(pattern=NAME_PATTERN.pattern, description="operator keys: another owner's wallet")
    ] = None,
) -> WalletResponse:
    """Your wallet: its address and, per token, the total, what open orders have reserved,
    and what is available. Made and funded at its first use."""
    return WalletResponse.of(
        await market.wallets.view(principal.owner_scope(owner, "wallet") or principal.owner)
    )
