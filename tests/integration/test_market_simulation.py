"""The simulated market on real PostgreSQL: other traders, price moves, the chain."""

from __future__ import annotations

from decimal import Decimal

from market import Market
from market.background import BackgroundTrader
from market.pools import genesis_pools


async def test_background_traders_move_the_pools(worker: Market) -> None:
    before = {p.pool_id: p.mid_price() for p in await worker.pools.all()}
    trader = BackgroundTrader(worker.sim.store, worker.clock, trades_per_s=100, seed=1)
    beats: list[int] = []
    trades = await trader.run(1.0, heartbeat=beats.append)
    after = {p.pool_id: p.mid_price() for p in await worker.pools.all()}
    assert trades >= 5
    assert beats and beats[-1] == trades
    assert sum(before[k] != after[k] for k in before) >= 3


async def test_traders_lean_against_a_price_that_drifted() -> None:
    # A pool 5 % above its genesis price is sold into far more often than bought.
    pool = next(p for p in genesis_pools() if p.pool_id == "raydium:SOL/USDC")
    trader = BackgroundTrader(pools=None, clock=None, trades_per_s=1, seed=3)  # type: ignore[arg-type]
    pumped = pool.swap("USDC", 190_000 * 10**6)[1]  # buys SOL: the price rises ≈ 5 %
    assert pumped.mid_price() > pool.mid_price() * Decimal("1.04")
    sells = sum(trader.next_trade(pumped)[0] == "SOL" for _ in range(200))
    assert sells > 150
