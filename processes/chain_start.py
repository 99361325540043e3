"""What a process checks before it starts on a real cluster (ORDER_ENGINE_MARKET=rpc):
the settings, the venues file, the cluster (mainnet only when allowed) and every pool.
A failed check is one clear line and exit status 1, not a traceback."""

from __future__ import annotations

import asyncio
import sys

from core.domain import MarketMode
from core.settings import Settings
from market.errors import MarketError
from onchain.market import chain_pools


async def check_chain_start(settings: Settings) -> None:
    settings.require_chain()
    pools, _, rpc = chain_pools(settings)
    try:
        await pools.ensure_genesis()
    finally:
        await rpc.close()


def refuse_unless_chain_ready(settings: Settings) -> None:
    """Exit 1 with the reason when a real cluster's market cannot start (sim: nothing)."""
    if settings.market is not MarketMode.RPC:
        return
    try:
        asyncio.run(check_chain_start(settings))
    except (RuntimeError, ValueError, MarketError) as error:
        print(f"order-engine: refusing to start: {error}", file=sys.stderr)
        raise SystemExit(1) from None
