"""Quotes and the route planner (issue 16's figures):

- the planner's cost per order, on the genesis pools, for a direct pair (SOL→USDC), two
  hops (JUP→SOL) and three (BONK→RAY), at sizes from 0.1 to 100 SOL's worth;
- POST /quotes answered over HTTP by the engine's API, simulated quote latency 0, for the
  same pairs, one request at a time.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import httpx

from bench.stats import percentile
from core.domain import SwapMode
from market.pools import genesis_pools
from market.routing import plan_route

# pair, hops, about one SOL's worth in human units of token_in
PAIRS = [("SOL", "USDC", 1, 1.0), ("JUP", "SOL", 2, 160.0), ("BONK", "RAY", 3, 1e9)]
DECIMALS = {"SOL": 9, "JUP": 6, "BONK": 5}


@dataclass(frozen=True)
class Timing:
    label: str
    hops: int
    p50_ms: float
    p99_ms: float
    seen_hops: int  # what the plans actually used (the most)


def time_planner(calls: int, seed: int = 7) -> list[Timing]:
    rng = random.Random(seed)
    pools = genesis_pools()
    timings = []
    for token_in, token_out, hops, per_sol in PAIRS:
        times, seen = [], 0
        for n in range(calls):
            units = int(per_sol * 10 ** rng.uniform(-1, 2) * 10 ** DECIMALS[token_in])
            mode = SwapMode.EXACT_IN if n % 2 == 0 else SwapMode.EXACT_OUT
            amount = (
                units
                if mode is SwapMode.EXACT_IN
                else plan_route(pools, token_in, token_out, units).amount_out
            )
            started = time.perf_counter()
            plan = plan_route(pools, token_in, token_out, amount, mode=mode)
            times.append((time.perf_counter() - started) * 1000)
            seen = max(seen, plan.hops)
        timings.append(
            Timing(f"{token_in}→{token_out}", hops, percentile(times, 50), percentile(times, 99), seen)
        )
    return timings


async def time_quotes(api_url: str, key: str, requests: int, seed: int = 7) -> list[Timing]:
    rng = random.Random(seed)
    timings = []
    async with httpx.AsyncClient(
        base_url=api_url, timeout=30, headers={"Authorization": f"Bearer {key}"}
    ) as http:
        for token_in, token_out, hops, per_sol in PAIRS:
            times, seen = [], 0
            for _ in range(requests):
                amount = f"{per_sol * 10 ** rng.uniform(-1, 2):.5f}"
                started = time.perf_counter()
                answer = await http.post(
                    "/quotes", json={"token_in": token_in, "token_out": token_out, "amount": amount}
                )
                times.append((time.perf_counter() - started) * 1000)
                if answer.status_code == 200:
                    seen = max(
                        seen, len({(leg["token_in"], leg["token_out"]) for leg in answer.json()["route"]})
                    )
            timings.append(
                Timing(f"{token_in}→{token_out}", hops, percentile(times, 50), percentile(times, 99), seen)
            )
    return timings
