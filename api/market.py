"""The simulated market: tokens, pools, the chain's executed transactions, the wallet."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.auth import KeyDep
from api.deps import MarketDep
from core.errors import InvalidInput
from core.formatting import format_amount
from core.ids import is_order_id
from market.schemas import Items, TokenView, pool_view, transaction_view
from market.tokens import TOKENS, find_token

router = APIRouter(tags=["market"])


@router.get("/tokens", response_model=Items)
async def list_tokens(market: MarketDep) -> dict[str, Any]:
    """Tokens that can be traded, by symbol or mint (with those listed through /sim/pools)."""
    listed = [token for pool in await market.pools.all() for token in pool.listed]
    return {"items": [TokenView.of(t).model_dump() for t in (*TOKENS, *listed)]}


@router.get("/markets", response_model=Items)
async def list_markets(market: MarketDep) -> dict[str, Any]:
    """Every pool with its mid price (quote token per base token), fee and reserves."""
    return {"items": [pool_view(pool) for pool in await market.pools.all()]}


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
    owner = None if principal.operator else principal.owner
    rows = await market.ledger.recent(owner=owner, order_id=order_id, limit=limit)
    return {"items": [transaction_view(tx) for tx in rows]}


@router.get("/wallet")
async def wallet(market: MarketDep) -> dict[str, Any]:
    """The simulated wallet's balances, in human units."""
    items = []
    for symbol, units in sorted((await market.wallet.balances()).items()):
        token = find_token(symbol)
        if token is not None:
            items.append(
                {"token": symbol, "mint": token.mint, "amount": format_amount(units, token.decimals)}
            )
    return {"items": items}
