"""Landing in the fee market (issue 15's figures), measured on the simulated chain itself
with the bench's PostgreSQL, in real 400 ms slots:

- landing time by fee level: transactions bidding each level of GET /fees (and tipped
  ones), all sent at once, at congestion 0.2 and then 0.9 (an operator's fixed level);
- sandwiched public transactions by size and slippage: swaps of 1, 30 and 300 SOL with a
  minimum 50 or 500 bps below their clean fill, each from the same pool state;
- fee paid per confirmed order: what the engine sections' orders paid (auto priority).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from itertools import count

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.engine import ENGINE
from bench.report import progress
from bench.sections import Section, Workbench
from bench.stats import Figure, percentile
from core.domain import FeeLevel
from core.settings import SETTINGS_NAMES, Settings
from market import Market, build_market
from market.chain import SignedTransaction
from market.errors import MarketError
from market.transactions import ComputeBudget, SwapLeg, build_swap
from storage.database import create_engine, create_sessionmaker

SOL = 10**9
OWNER = "bench-landing"
TIPPED = "tipped (10 000 lamports, no priority fee)"
LEVELS = [*(str(level) for level in FeeLevel), TIPPED]
CONGESTIONS = (0.2, 0.9)
PER_LEVEL = 40
SIZES_SOL, SLIPPAGES_BPS, PER_CELL = (1, 30, 300), (50, 500), 30
keys = count()
LANDING_NEEDS_S = 90
LANDING_TIME = "landing time by fee level (400 ms slots)"
SANDWICHES = "sandwiched public transactions, by size and slippage"
FEES_PAID = "fee paid per confirmed order"


@dataclass
class LandingFigures:
    slots: dict[tuple[float, str], list[int]] = field(default_factory=dict)  # landed − sent
    expired: dict[tuple[float, str], int] = field(default_factory=dict)
    sandwiched: dict[tuple[int, int], tuple[int, int, float]] = field(default_factory=dict)  # hit, n, bps
    fees_lamports: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def p(self, congestion: float, level: str, q: float) -> float:
        return percentile([float(s) for s in self.slots.get((congestion, level), [])], q)


async def measure_landing(settings: Settings) -> LandingFigures:
    engine = create_engine(settings.database_url, pool_size=20)
    sessions = create_sessionmaker(engine)
    figures = LandingFigures()
    try:
        slotted = build_market(_tuned(settings, latency_ms=2500, failure_rate=0), sessions)
        await slotted.wallets.fund(OWNER, "SOL", 1_000_000 * SOL)
        try:
            for congestion in CONGESTIONS:
                await slotted.sim.fee_market.fix(congestion, 600)
                for level in LEVELS:
                    await _landing_times(slotted, congestion, level, figures)
        finally:
            await slotted.sim.fee_market.release()
        instant = build_market(_tuned(settings, latency_ms=0, failure_rate=0.05), sessions)
        for size in SIZES_SOL:
            for slippage in SLIPPAGES_BPS:
                await _sandwiches(instant, sessions, size, slippage, figures)
        async with sessions() as session:
            rows = await session.execute(
                text(
                    "SELECT (execution->'fees'->>'network_lamports')::bigint"
                    " + (execution->'fees'->>'priority_lamports')::bigint"
                    " + (execution->'fees'->>'tip_lamports')::bigint"
                    " FROM orders WHERE status = 'CONFIRMED' AND execution IS NOT NULL"
                )
            )
            figures.fees_lamports = [int(row[0]) for row in rows]
    finally:
        await engine.dispose()
    return figures


def _tuned(settings: Settings, *, latency_ms: float, failure_rate: float) -> Settings:
    return settings.model_copy(
        update={"sim_execution_latency_ms": latency_ms, "sim_failure_rate": failure_rate, "sim_seed": 5}
    )


async def _signed(market: Market, amount: int, min_out: int, price: int, tip: int) -> SignedTransaction:
    slot, key = market.clock.current_slot(), f"bench-landing:{next(keys)}"
    budget = ComputeBudget(120_000, price, tip)
    signature, raw = build_swap(
        signer=await market.wallets.keypair(OWNER),
        idempotency_key=key,
        token_in="SOL",
        token_out="USDC",
        legs=[SwapLeg("raydium", amount, min_out)],
        slot=slot,
        budget=budget,
    )
    return SignedTransaction(signature, raw, key, slot, budget)


async def _landing_times(market: Market, congestion: float, level: str, figures: LandingFigures) -> None:
    levels = await market.fees.levels()
    price, tip = (0, 10_000) if level == TIPPED else (levels.at(FeeLevel(level)), 0)
    txs = [await _signed(market, SOL // 100, 1, price, tip) for _ in range(PER_LEVEL)]
    results = await asyncio.gather(*(market.chain.confirm(tx) for tx in txs), return_exceptions=True)
    slots, expired = [], 0
    for result in results:
        if isinstance(result, MarketError):
            expired += 1
        elif isinstance(result, BaseException):
            figures.errors.append(f"landing at {congestion}, {level}: {result!r}")
        elif result.report is not None:
            slots.append(result.report.landed_slot - result.report.sent_slot)
    figures.slots[(congestion, level)], figures.expired[(congestion, level)] = slots, expired


async def _sandwiches(
    market: Market,
    sessions: async_sessionmaker[AsyncSession],
    size: int,
    slippage: int,
    figures: LandingFigures,
) -> None:
    hits, damage = 0, 0.0
    for _ in range(PER_CELL):
        pool = next(p for p in await market.pools.all("SOL", "USDC") if p.dex == "raydium")
        clean = pool.quote_swap("SOL", size * SOL).amount_out
        try:
            landed = await market.chain.confirm(
                await _signed(market, size * SOL, clean * (10_000 - slippage) // 10_000, 1_000, 0)
            )
        finally:
            async with sessions() as session, session.begin():  # the same pool state for each
                await session.execute(
                    text(
                        "UPDATE market_pools SET state = CAST(:state AS jsonb), updated_at = now() WHERE pool_id = :id"
                    ),
                    {"state": json.dumps(pool.to_state()), "id": pool.pool_id},
                )
        if landed.report is not None and landed.report.sandwiched:
            hits += 1
            damage += (clean - landed.amount_out) * 10_000 / clean
    figures.sandwiched[(size, slippage)] = (hits, PER_CELL, damage / hits if hits else 0.0)


async def _run_landing(workbench: Workbench) -> list[Figure]:
    progress(f"landing: {len(LEVELS)} fee levels at congestion {' and '.join(map(str, CONGESTIONS))} …")
    settings = Settings.model_validate(
        {k: v for k, v in workbench.engine.env().items() if k in SETTINGS_NAMES}
    )
    landing = await measure_landing(settings)
    workbench.notes += [f"{LANDING_TIME}: {error}" for error in landing.errors[:5]]
    figures = []
    for congestion in CONGESTIONS:
        for level in LEVELS:
            slots = landing.slots.get((congestion, level), [])
            figures.append(
                Figure(
                    LANDING_TIME,
                    f"congestion {congestion}, {level}: p50",
                    landing.p(congestion, level, 50),
                    "slots",
                    note=f"p90 {landing.p(congestion, level, 90):.0f}, max {max(slots, default=0)}; "
                    f"{landing.expired.get((congestion, level), 0)}/{PER_LEVEL} expired",
                )
            )
    for (size, slippage), (hits, n, damage) in sorted(landing.sandwiched.items()):
        figures.append(
            Figure(
                SANDWICHES,
                f"{size} SOL at {slippage} bps",
                round(100 * hits / n, 1),
                "%",
                note=f"{hits}/{n}; fill {damage:.0f} bps below clean when hit" if hits else f"0/{n}",
            )
        )
    fees = [float(f) for f in landing.fees_lamports]
    figures += [
        Figure(FEES_PAID, "p50", percentile(fees, 50), "lamports", note=f"{len(fees)} orders, auto priority"),
        Figure(FEES_PAID, "p99", percentile(fees, 99), "lamports"),
    ]
    return figures


# On the engine sections' database: the fee paid is what their orders paid.
LANDING_SECTION = Section(
    name="landing",
    tables=(LANDING_TIME, SANDWICHES, FEES_PAID),
    needs_s=LANDING_NEEDS_S,
    run=_run_landing,
    engine=ENGINE,
)
