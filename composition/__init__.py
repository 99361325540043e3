"""The composition root: the one place that turns settings into a process's services.

The API, the worker and the operator CLI each hold one PostgreSQL engine, one Redis
client and one Temporal client, and the domain services built on them; what is built
depends on the settings (which market: the simulated one, `build_market`, or a real
cluster over JSON-RPC, onchain's `build_chain_market`, when ORDER_ENGINE_MARKET=rpc). A process adds only what is its own: the API its event hub and
limits, the worker its activities and watcher.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from accounts.service import ApiKeys
from core.domain import MarketMode
from core.settings import Settings
from market import Market, build_market
from onchain.market import build_chain_market
from orders.placement import OrderPlacement, build_placement
from orders.quotes import QuoteService, build_quotes
from orders.runs import OrderRuns
from orders.service import OrderService
from storage.database import create_engine, create_sessionmaker, when_reachable
from storage.redis import RedisBreaker, connect_redis
from strategies.runs import StrategyRuns
from strategies.service import StrategyService, build_strategies


@dataclass(frozen=True)
class Workflows:
    """The services that start or talk to workflows: they need Temporal."""

    temporal: Client
    order_runs: OrderRuns
    strategy_runs: StrategyRuns
    orders: OrderService
    placement: OrderPlacement
    strategies: StrategyService


@dataclass(frozen=True)
class Services:
    """What every process shares: its clients and the domain services on them."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    redis: Redis
    breaker: RedisBreaker  # one per Redis client: it trips for everything that uses it
    market: Market
    keys: ApiKeys
    quotes: QuoteService
    with_temporal: Workflows | None

    @property
    def workflows(self) -> Workflows:
        if self.with_temporal is None:
            raise RuntimeError("these services were built without Temporal")
        return self.with_temporal


@contextlib.asynccontextmanager
async def built_services(
    settings: Settings,
    temporal: Client | None,
    *,
    pool_size: int = 10,
    planning_threads: int | None = None,
    ensure_market: bool = True,
) -> AsyncIterator[Services]:
    """The process's PostgreSQL engine (`pool_size` connections), Redis client and the
    services on them, and on `temporal` those that need it (None: a command that only
    manages keys, say); closed on exit. `planning_threads`: route
    planning off the event loop (default: the settings'; 0 plans inline, as a one-shot
    CLI command may). `ensure_market`: wait for PostgreSQL and create the genesis market
    (a long-running process does; a CLI command need not)."""
    engine = create_engine(settings.database_url, pool_size)
    redis = connect_redis(settings.redis_url)
    threads = settings.route_planning_threads if planning_threads is None else planning_threads
    planning = ThreadPoolExecutor(threads, thread_name_prefix="route-planning") if threads > 0 else None
    market: Market | None = None
    try:
        sessions = create_sessionmaker(engine)
        # The seam: the simulated market, or a real cluster over JSON-RPC (onchain/).
        market = (
            build_chain_market(settings, sessions)
            if settings.market is MarketMode.RPC
            else build_market(settings, sessions)
        )
        if ensure_market:
            await when_reachable(market.ensure_genesis, "creating the genesis market")
        breaker = RedisBreaker()
        quotes = build_quotes(settings, sessions, market, redis, breaker, planning)
        workflows = None
        if temporal is not None:
            order_runs = OrderRuns(temporal)
            workflows = Workflows(
                temporal=temporal,
                order_runs=order_runs,
                strategy_runs=StrategyRuns(temporal),
                orders=OrderService(sessions, order_runs),
                placement=build_placement(settings, sessions, order_runs, redis, market, quotes, breaker),
                strategies=build_strategies(settings, sessions, temporal, redis, quotes),
            )
        yield Services(
            settings=settings,
            sessions=sessions,
            redis=redis,
            breaker=breaker,
            market=market,
            keys=ApiKeys(sessions, settings.key_secret()),
            quotes=quotes,
            with_temporal=workflows,
        )
    finally:
        if planning is not None:
            planning.shutdown(wait=False, cancel_futures=True)
        if market is not None:
            await market.close()
        await redis.aclose()
        await engine.dispose()
