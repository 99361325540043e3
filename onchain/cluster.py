"""Which cluster the engine talks to, and what it found there: the checks a process
makes before it starts in `rpc` mode, and `order-engine venues check`'s report."""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal

from solders.pubkey import Pubkey

from market.errors import MarketError
from onchain.pools import ChainPools, PoolLoadError
from onchain.rpc import ClusterRefused, SolanaRpc, check_cluster
from onchain.venues_file import VenuesFile


@dataclass(frozen=True)
class PoolReport:
    address: Pubkey
    venue: str
    pair: str | None = None
    price: Decimal | None = None
    liquidity: dict[str, str] | None = None
    fee_bps: Decimal | None = None
    error: str | None = None


@dataclass(frozen=True)
class VenuesReport:
    genesis_hash: str
    pools: tuple[PoolReport, ...]

    @property
    def ok(self) -> bool:
        return all(pool.error is None for pool in self.pools)


async def venues_report(
    pools: ChainPools, venues: VenuesFile, rpc: SolanaRpc, allow_mainnet: bool
) -> VenuesReport:
    """Fetch every pool of the file; what each is, or why it cannot be traded."""
    try:
        genesis = await check_cluster(rpc, allow_mainnet)
    except MarketError as error:  # the endpoint itself failed: nothing to report per pool
        raise ClusterRefused(f"{rpc.url} does not answer ({error})") from None
    try:
        errors = await pools.load()
    except (PoolLoadError, MarketError) as error:
        return VenuesReport(
            genesis, tuple(PoolReport(e.address, e.venue, error=str(error)) for e in venues.pools)
        )
    by_address = {snapshot.entry.address: snapshot for snapshot in pools.snapshots()}
    now = time.time()
    reports: list[PoolReport] = []
    for entry in venues.pools:
        snapshot = by_address.get(entry.address)
        if snapshot is None:
            reports.append(
                PoolReport(entry.address, entry.venue, error=errors.get(entry.address, "not loaded"))
            )
            continue
        pool = snapshot.pool
        described = pool.describe()
        reports.append(
            PoolReport(
                entry.address,
                entry.venue,
                pool.pair,
                pool.mid_price(),
                dict(described.get("reserves", {})),
                pool.marginal_fee_bps(now),
            )
        )
    return VenuesReport(genesis, tuple(reports))


def render_report(report: VenuesReport) -> str:
    lines = [f"cluster genesis {report.genesis_hash}"]
    for pool in report.pools:
        if pool.error is not None:
            lines.append(f"✗ {pool.venue} {pool.address}: {pool.error}")
            continue
        liquidity = ", ".join(f"{amount} {symbol}" for symbol, amount in (pool.liquidity or {}).items())
        lines.append(
            f"✓ {pool.venue} {pool.address} {pool.pair}: price {pool.price:.10g}, "
            f"liquidity {liquidity}, fee {pool.fee_bps:.4g} bps"
        )
    return "\n".join(lines)
