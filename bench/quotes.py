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

from bench.engine import ENGINE
from bench.report import progress
from bench.sections import Section, Workbench
from bench.stats import Figure, percentile
from core.domain import SwapMode
from market.pools import genesis_pools
from market.routing import plan_route

# pair, hops, about one SOL's worth in human units of token_in
PAIRS = [("SOL", "USDC", 1, 1.0), ("JUP", "SOL", 2, 160.0), ("BONK", "RAY", 3, 1e9)]
DECIMALS = {"SOL": 9, "JUP": 6, "BONK": 5}
PLANNER_CALLS, QUOTE_REQUESTS = 200, 200
PLANNER = "route planner, per order (genesis pools, exact-in and exact-out)"
QUOTES = "POST /quotes, one at a time, simulated quote latency 0"


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


async def _run_planner(workbench: Workbench) -> list[Figure]:
    progress(f"planner: {PLANNER_CALLS} plans per pair, 1 to 3 hops …")
    return [
        figure
        for timing in time_planner(PLANNER_CALLS)
        for figure in (
            Figure(PLANNER, f"{timing.label} ({timing.hops} hop) p50", timing.p50_ms, "ms"),
            Figure(
                PLANNER,
                f"{timing.label} ({timing.hops} hop) p99",
                timing.p99_ms,
                "ms",
                note=f"routes of up to {timing.seen_hops} hop(s)",
            ),
        )
    ]


async def _run_quotes(workbench: Workbench) -> list[Figure]:
    progress(f"quotes: {QUOTE_REQUESTS} POST /quotes per pair, 1 to 3 hops …")
    figures = []
    for timing in await time_quotes(
        workbench.engine.api_url, workbench.engine.operator_key(), QUOTE_REQUESTS
    ):
        target = 50 if timing.hops == 1 else 150 if timing.hops == 3 else None
        figures += [
            Figure(QUOTES, f"{timing.label} ({timing.hops} hop) p50", timing.p50_ms, "ms"),
            Figure(
                QUOTES,
                f"{timing.label} ({timing.hops} hop) p99",
                timing.p99_ms,
                "ms",
                note=f"target ≤ {target} ms" if target else "",
            ),
        ]
    return figures


PLANNER_SECTION = Section(name="planner", tables=(PLANNER,), needs_s=30, run=_run_planner)
QUOTES_SECTION = Section(name="quotes", tables=(QUOTES,), needs_s=40, run=_run_quotes, engine=ENGINE)
