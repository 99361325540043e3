"""The simulated market: tokens, pools, the chain's executed transactions, the wallet."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlmodel import col

from api.auth import KeyDep
from api.deps import MarketDep, SessionDep
from api.errors import InvalidOrder
from api.schemas import Items
from core.ids import is_order_id
from market.tokens import TOKENS, find_token, format_amount, format_price
from storage.models import ChainTransaction, Order
from storage.orders import format_decimal, format_time

router = APIRouter(tags=["market"])


@router.get("/tokens", response_model=Items)
async def list_tokens(market: MarketDep) -> dict[str, Any]:
    """Tokens that can be traded, by symbol or mint (with those listed through /sim/pools)."""
    listed = [token for pool in await market.pools() for token in pool.listed]
    return {
        "items": [{"symbol": t.symbol, "mint": t.mint, "decimals": t.decimals} for t in (*TOKENS, *listed)]
    }


@router.get("/markets", response_model=Items)
async def list_markets(market: MarketDep) -> dict[str, Any]:
    """Every pool with its mid price (quote token per base token), fee and reserves."""
    items = [
        {
            "pair": pool.pair,
            "dex": pool.dex,
            "mid_price": format_price(pool.mid_price()),
            "fee_bps": pool.fee_bps,
            "opens_at": format_time(datetime.fromtimestamp(pool.opens_at, UTC)) if pool.opens_at else None,
            **pool.describe(),
        }
        for pool in await market.pools()
    ]
    return {"items": items}


@router.get("/chain/transactions", response_model=Items)
async def list_transactions(
    session: SessionDep,
    principal: KeyDep,
    order_id: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Transactions of your orders executed on the simulated chain, newest first; one per
    order at most. An operator key sees every transaction, other traders' included."""
    query = select(ChainTransaction).order_by(col(ChainTransaction.at).desc()).limit(limit)
    if not principal.operator:
        mine = select(col(Order.id)).where(col(Order.owner) == principal.owner)
        query = query.where(col(ChainTransaction.order_id).in_(mine))
    if order_id is not None:
        if not is_order_id(order_id):
            raise InvalidOrder("invalid_order_id", "order_id", "not an order id (ord_…)")
        query = query.where(col(ChainTransaction.order_id) == order_id)
    rows = (await session.execute(query)).scalars()
    return {
        "items": [
            {
                "tx_hash": tx.tx_hash,
                "order_id": tx.order_id,
                "dex": tx.dex,
                "token_in": tx.token_in,
                "token_out": tx.token_out,
                "amount_in": format_decimal(tx.amount_in),
                "amount_out": format_decimal(tx.amount_out),
                "legs": tx.legs,
                "slot": tx.slot,
                "at": format_time(tx.at),
            }
            for tx in rows
        ]
    }


@router.get("/wallet")
async def wallet(market: MarketDep) -> dict[str, Any]:
    """The simulated wallet's balances, in human units."""
    balances = await market.wallet()
    items = []
    for symbol, units in sorted(balances.items()):
        token = find_token(symbol)
        if token is not None:
            items.append(
                {"token": symbol, "mint": token.mint, "amount": format_amount(units, token.decimals)}
            )
    return {"items": items}
