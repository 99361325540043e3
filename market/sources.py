"""What the rest of the engine needs of a market, whichever it is: the simulated one
(market/) or a real cluster (onchain/). `build_market` and onchain's builder each
give these; orders, the watcher, quotes and the activities depend only on them."""

from __future__ import annotations

from typing import Protocol

from contracts.landing import LandingRequest
from market.chain import SignedTransaction
from market.fees import FeeLevels
from market.ledger import Landed
from market.pools import Pool
from market.transactions import SwapLeg


class MarketPools(Protocol):
    """The pools orders route across (market/pool_store.py, onchain/pools.py)."""

    async def all(self, token_a: str | None = None, token_b: str | None = None) -> list[Pool]: ...

    async def pairs(self) -> frozenset[frozenset[str]]: ...

    def known_pairs(self) -> frozenset[frozenset[str]] | None: ...

    async def learn_tokens(self, *symbols: str) -> None: ...

    async def ensure_genesis(self) -> None: ...


class FeeLevelSource(Protocol):
    """Recent priority fees at the four levels (market/fee_market.py, onchain/fees.py)."""

    async def levels(self) -> FeeLevels: ...


class SwapChain(Protocol):
    """Build, send, confirm and close an order's swap (market/chain.py, onchain/chain.py)."""

    async def build(
        self,
        *,
        order_id: str,
        idempotency_key: str,
        token_in: str,
        token_out: str,
        legs: list[SwapLeg],
        landing: LandingRequest | None = None,
        escalation: int = 0,
    ) -> SignedTransaction: ...

    async def submit(self, tx: SignedTransaction, simulate: bool = False) -> str: ...

    async def confirm(self, tx: SignedTransaction) -> Landed: ...

    async def close(self, order_id: str, idempotency_key: str) -> Landed | None: ...
