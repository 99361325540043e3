"""The simulated Solana market: tokens, pools with their swap math, the router, the
venues' quote endpoints, the chain and its fee market. Owners' wallets are not the
market's: they live in wallets/, and the chain moves their balances through it.

Pure (no I/O, no clock): tokens, pools, dlmm, router, valuation, transactions. With
state in PostgreSQL (pool_store.py, ledger.py), every process sees one market: venues
(quotes), chain (build, submit, land), controls (/sim), background (other traders).
`build_market(settings, sessions)` assembles them the same way in every process; a
real cluster's market (onchain/) fills the same `Market` with `simulation=None`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.domain import MarketMode
from core.settings import Settings
from market.chain import Chain
from market.clock import MarketClock
from market.controls import SimulationControls
from market.fee_market import FeeMarket
from market.ledger import TransactionLedger
from market.pool_store import PoolStore
from market.sources import FeeLevelSource, MarketPools, SwapChain
from market.tokens import genesis_wallet
from market.venues import SimulationConfig, Venues
from wallets.custody import ChainBalances, KeypairSeal
from wallets.service import Wallets


@dataclass(frozen=True)
class Simulation:
    """What only the simulated market has: its stored pools (other traders move them),
    the operator's controls (/sim) and the fee market's congestion."""

    store: PoolStore
    chain: Chain
    controls: SimulationControls
    fee_market: FeeMarket
    config: SimulationConfig


@dataclass(frozen=True)
class Market:
    mode: MarketMode
    clock: MarketClock
    pools: MarketPools
    venues: Venues
    chain: SwapChain
    wallets: Wallets
    ledger: TransactionLedger
    fees: FeeLevelSource
    simulation: Simulation | None  # None on a real cluster
    close: Callable[[], Awaitable[None]] = lambda: _nothing()

    @property
    def sim(self) -> Simulation:
        """The simulation's parts, for what only runs on it (benchmarks, the trader)."""
        if self.simulation is None:
            raise RuntimeError("the market is a real cluster, not the simulation")
        return self.simulation

    async def ensure_genesis(self) -> None:
        """Simulated: create the genesis pools on first start, never overwrite (wallets
        are made and funded at their owner's first use). Real: load the venues' pools."""
        await self.pools.ensure_genesis()


async def _nothing() -> None:
    return None


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
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    chain_balances: ChainBalances | None = None,
) -> Market:
    """The market as every process (API, worker, bench, tests) sees it. `chain_balances`:
    the real chain's (onchain/); given, owners' wallets are their own keypairs held
    sealed under ORDER_ENGINE_WALLET_KEY, with the chain's balances. In `rpc` mode it
    must be given: simulated wallets with genesis funds must never stand in for it."""
    config = simulation_config(settings)
    rng = random.Random(config.seed)
    market_clock = MarketClock(clock, sleep)
    fee_market = FeeMarket(sessions, market_clock, config.seed or 0, settings.sim_background_trades_per_s)
    pools = PoolStore(sessions)
    ledger = TransactionLedger(sessions)
    if chain_balances is not None:
        wallets = Wallets(sessions, {}, seal=KeypairSeal.from_settings(settings), chain=chain_balances)
    elif settings.market is MarketMode.RPC:
        raise RuntimeError("ORDER_ENGINE_MARKET=rpc: build_market needs the chain's balances (onchain/)")
    else:
        wallets = Wallets(sessions, genesis_wallet() if settings.sim_genesis_funds else {})
    chain = Chain(sessions, pools, wallets, ledger, market_clock, config, rng, fee_market)
    return Market(
        mode=MarketMode.SIM,
        clock=market_clock,
        pools=pools,
        venues=Venues(pools, market_clock, config, rng),
        chain=chain,
        fees=fee_market,
        wallets=wallets,
        ledger=ledger,
        simulation=Simulation(
            pools, chain, SimulationControls(pools, wallets, market_clock), fee_market, config
        ),
    )
