"""The simulated Solana market: tokens, pools with their swap math, the router, the
venues' quote endpoints, the chain and the wallet.

Pure (no I/O, no clock): tokens, pools, dlmm, router, valuation, transactions. With
state in PostgreSQL (storage.py), every process sees one market: venues (quotes), chain
(build, submit, land), wallet (balances), controls (/sim), background (other traders).
`build_market(settings, sessions)` assembles them the same way in every process.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.settings import Settings
from market.chain import Chain
from market.clock import MarketClock
from market.controls import SimulationControls
from market.storage import BalanceStore, PoolStore, TransactionLedger
from market.venues import SimulationConfig, Venues
from market.wallet import Wallet


@dataclass(frozen=True)
class Market:
    clock: MarketClock
    pools: PoolStore
    venues: Venues
    chain: Chain
    wallet: Wallet
    ledger: TransactionLedger
    controls: SimulationControls
    config: SimulationConfig

    async def ensure_genesis(self) -> None:
        """Create the pools and fund the wallet on first start; never overwrite."""
        await self.pools.ensure_genesis()
        await self.wallet.ensure_genesis()


def simulation_config(settings: Settings) -> SimulationConfig:
    return SimulationConfig(
        quote_latency_ms=settings.sim_quote_latency_ms,
        execution_latency_ms=settings.sim_execution_latency_ms,
        failure_rate=settings.sim_failure_rate,
        seed=settings.sim_seed,
    )


def build_market(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    clock: Callable[[], float] = time.time,
) -> Market:
    """The market as every process (API, worker, bench, tests) sees it."""
    config = simulation_config(settings)
    rng = random.Random(config.seed)
    market_clock = MarketClock(clock)
    pools = PoolStore(sessions)
    balances = BalanceStore(sessions)
    ledger = TransactionLedger(sessions)
    wallet = Wallet(balances)
    return Market(
        clock=market_clock,
        pools=pools,
        venues=Venues(pools, market_clock, config, rng),
        chain=Chain(sessions, pools, balances, ledger, market_clock, config, rng),
        wallet=wallet,
        ledger=ledger,
        controls=SimulationControls(pools, wallet, market_clock),
        config=config,
    )
