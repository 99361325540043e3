"""How long `best_route` takes to decide, on the genesis SOL/USDC pools.

Two timings per amount: from the pools (pool math for every candidate split included),
and from quoted curves, which is what the engine's `route_order` step does: the quotes
already carry each venue's output at `split_points(amount)`, so routing is lookups only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from bench.report import progress
from bench.sections import Section, Workbench
from bench.stats import Figure, percentile
from market.pools import Pool, genesis_pools, pools_for_pair
from market.router import Output, Route, best_route, pool_outputs, split_points

SOL = 10**9  # base units per SOL
ROUTER_AMOUNTS_SOL, ROUTER_CALLS = [1, 10, 100, 1000], 500
ROUTER = "router"


@dataclass(frozen=True)
class Timing:
    p50_us: float
    p99_us: float


@dataclass(frozen=True)
class RouterTiming:
    amount_sol: int
    from_pools: Timing
    from_curves: Timing
    selected_dex: str
    legs: str  # "raydium 70% / meteora 30%"


def _time(decide: Callable[[], Route], calls: int) -> Timing:
    for _ in range(20):  # warm-up
        decide()
    samples = []
    for _ in range(calls):
        started = time.perf_counter_ns()
        decide()
        samples.append((time.perf_counter_ns() - started) / 1000)
    return Timing(percentile(samples, 50), percentile(samples, 99))


def _quoted_curves(outputs: dict[str, Output], amount: int) -> dict[str, Output]:
    """Each venue as route_order sees it: a table of its outputs at the split points."""
    points = split_points(amount)
    curves = {dex: {point: output(point) for point in points} for dex, output in outputs.items()}
    return {dex: curve.__getitem__ for dex, curve in curves.items()}


def _route_from_pools(pools: list[Pool], amount: int) -> Route:
    return best_route(pool_outputs(pools, "SOL"), amount)


def time_router(amounts_sol: list[int], calls: int) -> list[RouterTiming]:
    pools = pools_for_pair(genesis_pools(), "SOL", "USDC")
    timings = []
    for amount_sol in amounts_sol:
        amount = amount_sol * SOL
        from_pools = _time(partial(_route_from_pools, pools, amount), calls)
        curves = _quoted_curves(pool_outputs(pools, "SOL"), amount)
        from_curves = _time(partial(best_route, curves, amount), calls)
        route = best_route(curves, amount)
        legs = " / ".join(f"{leg.dex} {round(100 * leg.amount_in / amount)}%" for leg in route.legs)
        timings.append(RouterTiming(amount_sol, from_pools, from_curves, route.selected_dex, legs))
    return timings


def router_figures() -> list[Figure]:
    figures = []
    for timing in time_router(ROUTER_AMOUNTS_SOL, ROUTER_CALLS):
        amount = f"{timing.amount_sol} SOL"
        figures += [
            Figure(
                ROUTER, f"{amount} p50, from pools", timing.from_pools.p50_us, "µs", note="pool math included"
            ),
            Figure(ROUTER, f"{amount} p99, from pools", timing.from_pools.p99_us, "µs"),
            Figure(
                ROUTER,
                f"{amount} p50, from quoted curves",
                timing.from_curves.p50_us,
                "µs",
                note="as route_order",
            ),
            Figure(ROUTER, f"{amount} p99, from quoted curves", timing.from_curves.p99_us, "µs"),
            Figure(ROUTER, f"{amount} route", timing.selected_dex, note=timing.legs),
        ]
    return figures


async def _run_router(workbench: Workbench) -> list[Figure]:
    progress(f"router: {ROUTER_CALLS} best_route calls per amount …")
    return router_figures()


ROUTER_SECTION = Section(
    name="router",
    tables=(ROUTER,),
    needs_s=15,
    run=_run_router,
    parameters={
        "router": {"amounts_sol": ROUTER_AMOUNTS_SOL, "calls": ROUTER_CALLS, "pair": "SOL/USDC"},
    },
)
