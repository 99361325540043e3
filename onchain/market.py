"""A real cluster's market: the same `Market` the simulated one fills (market/), built
from the settings (`ORDER_ENGINE_MARKET=rpc`): the venues file's pools over JSON-RPC,
owners' own keypairs held sealed, exactly-once sending."""

from __future__ import annotations

import asyncio
import random
import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.domain import MarketMode
from core.settings import Settings
from market import Market
from market.clock import MarketClock
from market.ledger import TransactionLedger
from market.venues import SimulationConfig, Venues
from onchain.balances import ChainBalances
from onchain.chain import RpcChain
from onchain.fees import ChainFees
from onchain.meteora_dlmm_venue import MeteoraDlmmVenue
from onchain.pools import ChainPools, VenueAdapter
from onchain.raydium_cpmm_venue import RaydiumCpmmVenue
from onchain.rpc import SolanaRpc
from onchain.venues_file import VenuesFile, VenuesFileError, load_venues_file
from wallets.custody import KeypairSeal
from wallets.service import Wallets

# Quotes come from decoded chain state: no simulated latency, failures or rate limit.
NO_SIMULATION = SimulationConfig(quote_latency_ms=0, execution_latency_ms=0, failure_rate=0, seed=None)


def build_chain_market(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> Market:
    """Everything but I/O: the venues file is read (VenuesFileError when it does not
    load); the cluster is first asked in `ensure_genesis` (a process's start)."""
    settings.require_chain()
    pools, venues, rpc = chain_pools(settings)
    fees = ChainFees(rpc, pools.pool_addresses)
    wallets = Wallets(
        sessions, {}, seal=KeypairSeal.from_settings(settings), chain=ChainBalances(rpc, pools.tokens)
    )
    ledger = TransactionLedger(sessions)
    clock = ClusterTime(pools)
    chain = RpcChain(sessions, rpc, pools, wallets, ledger, fees, venues.tip_accounts)
    return Market(
        mode=MarketMode.RPC,
        clock=clock,
        pools=pools,
        venues=Venues(pools, clock, NO_SIMULATION, random.Random()),
        chain=chain,
        wallets=wallets,
        ledger=ledger,
        fees=fees,
        simulation=None,
        close=rpc.close,
    )


class ClusterTime(MarketClock):
    """Wall-clock seconds, and the cluster's slot as last read with the pools (quotes
    and landing reports carry the cluster's slots, not the simulation's)."""

    def __init__(self, pools: ChainPools) -> None:
        super().__init__(time.time, asyncio.sleep)
        self._pools = pools

    def current_slot(self) -> int:
        return self._pools.current_slot()


def chain_pools(settings: Settings) -> tuple[ChainPools, VenuesFile, SolanaRpc]:
    """The venues file's pools over the settings' endpoint (VenuesFileError when the
    file does not load). Close the endpoint when done."""
    if settings.venues_file is None:
        raise VenuesFileError("ORDER_ENGINE_VENUES_FILE is not set")
    venues = load_venues_file(settings.venues_file)
    rpc = SolanaRpc(settings.rpc_url, settings.rpc_timeout_s)
    adapters: list[VenueAdapter] = [MeteoraDlmmVenue(), RaydiumCpmmVenue()]
    return ChainPools(rpc, venues, adapters, allow_mainnet=settings.allow_mainnet), venues, rpc
