"""Route planning (10–35 ms of pure Python per quote) runs in the process's planning
threads: the API's event loop goes on serving other requests meanwhile."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import orders.quotes
from accounts.limits import KeyRateLimiter, RateBucket
from core.domain import OrderType
from market.clock import MarketClock
from market.fee_market import FeeMarket
from market.pool_store import PoolStore
from market.pools import Pool, genesis_pools
from market.routing import RoutePlan, plan_route
from orders.quotes import QuoteService
from orders.schemas import OrderCreate
from orders.validation import validate_order
from storage.redis import RedisBreaker

POOLS = genesis_pools()
PAIRS = frozenset(frozenset((pool.base, pool.quote)) for pool in POOLS)


class GenesisPools(PoolStore):
    async def all(self, token_a: str | None = None, token_b: str | None = None) -> list[Pool]:
        return POOLS


def quote_service(planning: ThreadPoolExecutor) -> QuoteService:
    sessions: async_sessionmaker[AsyncSession] = async_sessionmaker()  # planning reads none
    clock = MarketClock(clock=lambda: 1_000_000.0)
    return QuoteService(
        sessions,
        GenesisPools(sessions),
        FeeMarket(sessions, clock, seed=7, background_trades_per_s=0),
        clock,
        KeyRateLimiter(Redis(), 600, RedisBreaker(), RateBucket.QUOTES),
        planning,
    )


async def test_routes_are_planned_in_the_planning_threads_not_on_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    planned_on: list[threading.Thread] = []

    def recording_plan_route(*args: Any, **kwargs: Any) -> RoutePlan:
        planned_on.append(threading.current_thread())
        return plan_route(*args, **kwargs)

    monkeypatch.setattr(orders.quotes, "plan_route", recording_plan_route)
    valid = validate_order(
        OrderCreate(type=OrderType.MARKET, token_in="SOL", token_out="JUP", amount="2"), PAIRS
    )
    with ThreadPoolExecutor(1, thread_name_prefix="route-planning") as planning:
        plan = await quote_service(planning).plan(valid)
    assert [thread.name for thread in planned_on] == ["route-planning_0"]
    assert planned_on[0] is not threading.current_thread()  # the event loop's
    assert plan == plan_route(POOLS, "SOL", "JUP", valid.units, now=1_000_000.0)
