"""The venues' quote endpoints: Raydium and Meteora answer what a swap would give now,
after their latency, and refuse (429) past their rate limit."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from core.domain import DEXES, SwapMode
from market.clock import MarketClock
from market.errors import MarketError, MarketErrorCode
from market.pools import Pool, SwapResult
from market.routing import RoutePlan, plan_route

# Each venue's quote endpoint allows this many requests per second per client (a token
# bucket); past it, it answers 429. Off when faults are off (failure rate 0).
QUOTE_RATE_PER_S = 25.0
QUOTE_BURST = 50


@dataclass(frozen=True)
class SimulationConfig:
    """The ORDER_ENGINE_SIM_* settings of the process that calls in (the worker)."""

    quote_latency_ms: float = 200
    execution_latency_ms: float = 2500
    failure_rate: float = 0.05  # per submit try; 0 turns every random fault off
    seed: int | None = None


@dataclass(frozen=True)
class Quote:
    pool: Pool
    result: SwapResult
    slot: int
    # amount_in -> amount_out at the amounts the router asks about, from the same state.
    curve: dict[int, int]


@dataclass(frozen=True)
class Planned:
    plan: RoutePlan
    direct: list[tuple[Pool, SwapResult]]  # each venue's own quote of the direct pair, if any
    slot: int


class TokenBucket:
    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.updated = float(burst), clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class PoolSource(Protocol):
    """Where venues read their pools (market/pool_store.py's PoolStore; memory in tests)."""

    async def all(self, token_a: str | None = None, token_b: str | None = None) -> list[Pool]: ...


class Venues:
    def __init__(
        self, pools: PoolSource, clock: MarketClock, config: SimulationConfig, rng: random.Random
    ) -> None:
        self._pools, self._clock, self._config, self._rng = pools, clock, config, rng
        self._quote_limits: dict[str, TokenBucket] = {}

    async def quote(
        self, dex: str, token_in: str, token_out: str, amount_in: int, points: list[int]
    ) -> Quote:
        """The venue's quote for `amount_in`, and its output at each of `points`."""
        await simulated_latency(self._rng, self._config.quote_latency_ms)
        if self._config.failure_rate > 0:
            bucket = self._quote_limits.setdefault(
                dex, TokenBucket(QUOTE_RATE_PER_S, QUOTE_BURST, self._clock.now)
            )
            if not bucket.take():
                raise MarketError(MarketErrorCode.RATE_LIMITED, f"{dex} answered 429 Too Many Requests")
        pool = await self._pool(dex, token_in, token_out)
        now = self._clock.now()
        curve = {amount: pool.quote_swap(token_in, amount, now).amount_out for amount in points}
        return Quote(pool, pool.quote_swap(token_in, amount_in, now), self._clock.current_slot(), curve)

    async def plan(
        self,
        token_in: str,
        token_out: str,
        amount: int,
        *,
        mode: SwapMode = SwapMode.EXACT_IN,
        max_hops: int = 3,
        dexes: Sequence[str] | None = None,
    ) -> Planned:
        """Every venue's pools asked at once (each after its latency, within its rate
        limit), then the best route across them: direct or through other tokens, split
        at each hop. NoRoute when nothing fills it."""
        venues = list(dexes) if dexes is not None else list(DEXES)
        await asyncio.gather(*(self._ask(dex) for dex in venues))
        pools = await self._pools.all()
        now = self._clock.now()
        plan = plan_route(
            pools, token_in, token_out, amount, mode=mode, max_hops=max_hops, dexes=venues, now=now
        )
        direct = []
        for pool in pools:
            if (
                {pool.base, pool.quote} == {token_in, token_out}
                and pool.dex in venues
                and pool.opens_at <= now
            ):
                result = (
                    pool.quote_swap(token_in, amount, now)
                    if mode is SwapMode.EXACT_IN
                    else pool.swap_exact_out(token_in, amount, now)[0]
                )
                if result.complete:
                    direct.append((pool, result))
        return Planned(plan, direct, self._clock.current_slot())

    async def _ask(self, dex: str) -> None:
        """One request to a venue: its latency, and a 429 past its rate limit."""
        await simulated_latency(self._rng, self._config.quote_latency_ms)
        if self._config.failure_rate > 0:
            bucket = self._quote_limits.setdefault(
                dex, TokenBucket(QUOTE_RATE_PER_S, QUOTE_BURST, self._clock.now)
            )
            if not bucket.take():
                raise MarketError(MarketErrorCode.RATE_LIMITED, f"{dex} answered 429 Too Many Requests")

    async def _pool(self, dex: str, token_in: str, token_out: str) -> Pool:
        for pool in await self._pools.all(token_in, token_out):
            if pool.dex == dex:
                check_open(pool, self._clock.now())
                return pool
        raise MarketError(MarketErrorCode.POOL_NOT_FOUND, f"{dex} has no {token_in}/{token_out} pool")


def check_open(pool: Pool, now: float) -> None:
    if pool.opens_at > now:
        raise MarketError(
            MarketErrorCode.POOL_NOT_OPEN, f"{pool.pool_id} opens in {pool.opens_at - now:.0f} s"
        )


async def simulated_latency(rng: random.Random, mean_ms: float) -> None:
    if mean_ms > 0:
        await asyncio.sleep(rng.uniform(0.5, 1.5) * mean_ms / 1000)
