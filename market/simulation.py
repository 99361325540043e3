"""The simulated venues and chain, with their state in PostgreSQL.

Every API and worker process talks to the same market: pools, the wallet and the
executed transactions are rows, and a swap lands in one transaction that locks the
pools it touches. Latency and faults follow the ORDER_ENGINE_SIM_* settings of the
process that calls in (the worker).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from market.errors import MarketError, MarketErrorCode
from market.pools import Pool, SwapResult, genesis_pools, pools_for_pair
from market.tokens import find_token, from_base_units, to_base_units
from storage.models import ChainTransaction, MarketPool, WalletBalance, utcnow

SLOT_MS = 400
# A blockhash is valid for 150 blocks (60 s of slots), as on Solana.
BLOCKHASH_VALID_SLOTS = 150
GENESIS_WALLET = {"SOL": Decimal(10_000), "USDC": Decimal(10_000_000), "USDT": Decimal(10_000_000)}
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


@dataclass(frozen=True)
class SimulationConfig:
    quote_latency_ms: float = 200
    execution_latency_ms: float = 2500
    failure_rate: float = 0.05  # per submit try
    seed: int | None = None


@dataclass(frozen=True)
class Quote:
    pool: Pool
    result: SwapResult
    slot: int


@dataclass(frozen=True)
class LegPlan:
    dex: str
    amount_in: int
    amount_out: int


@dataclass(frozen=True)
class SignedTransaction:
    """What the venue's transaction builder returns; the signature is the tx hash."""

    signature: str
    order_id: str
    idempotency_key: str
    token_in: str
    token_out: str
    legs: tuple[LegPlan, ...]
    min_amount_out: int
    recent_blockhash_slot: int

    @property
    def last_valid_slot(self) -> int:
        return self.recent_blockhash_slot + BLOCKHASH_VALID_SLOTS

    @property
    def amount_in(self) -> int:
        return sum(leg.amount_in for leg in self.legs)


@dataclass(frozen=True)
class Landed:
    tx_hash: str
    amount_in: int
    amount_out: int
    slot: int


def base58(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    text = ""
    while number:
        number, digit = divmod(number, 58)
        text = _B58[digit] + text
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + text


class SimulatedMarket:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        config: SimulationConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        self.config = config
        self._rng = random.Random(config.seed)
        self._clock = clock

    # -- state ---------------------------------------------------------------

    async def ensure_genesis(self) -> None:
        """Create the pools and fund the wallet on first start; never overwrite."""
        async with self._sessions() as session, session.begin():
            for pool in genesis_pools():
                await session.execute(
                    insert(MarketPool)
                    .values(
                        pool_id=pool.pool_id,
                        dex=pool.dex,
                        pair=pool.pair,
                        state=pool.to_state(),
                        updated_at=utcnow(),
                    )
                    .on_conflict_do_nothing()
                )
            for symbol, amount in GENESIS_WALLET.items():
                token = find_token(symbol)
                assert token is not None
                await session.execute(
                    insert(WalletBalance)
                    .values(token=symbol, amount=to_base_units(amount, token.decimals))
                    .on_conflict_do_nothing()
                )

    async def pools(self) -> list[Pool]:
        async with self._sessions() as session:
            rows = await session.execute(select(MarketPool).order_by(col(MarketPool.pool_id)))
            return [Pool.from_state(row.state) for row in rows.scalars()]

    async def wallet(self) -> dict[str, int]:
        async with self._sessions() as session:
            rows = await session.execute(select(WalletBalance))
            return {row.token: int(row.amount) for row in rows.scalars()}

    def current_slot(self) -> int:
        return int(self._clock() * 1000) // SLOT_MS

    # -- the venue interface: quote, build, submit, confirm -----------------

    async def quote(self, dex: str, token_in: str, token_out: str, amount_in: int) -> Quote:
        await self._latency(self.config.quote_latency_ms)
        pool = await self._pool(dex, token_in, token_out)
        return Quote(pool, pool.swap_exact_in(token_in, amount_in), self.current_slot())

    async def build(
        self,
        *,
        order_id: str,
        attempt: int,
        token_in: str,
        token_out: str,
        legs: tuple[LegPlan, ...],
        min_amount_out: int,
    ) -> SignedTransaction:
        await self._latency(self.config.execution_latency_ms * 0.1)
        balance = (await self.wallet()).get(token_in, 0)
        amount_in = sum(leg.amount_in for leg in legs)
        if balance < amount_in:
            raise MarketError(
                MarketErrorCode.INSUFFICIENT_FUNDS,
                f"wallet holds {_human(balance, token_in)} {token_in}, "
                f"order needs {_human(amount_in, token_in)}",
            )
        slot = self.current_slot()
        payload = json.dumps(
            [order_id, attempt, token_in, token_out, [leg.__dict__ for leg in legs], slot],
            sort_keys=True,
        ).encode()
        return SignedTransaction(
            signature=base58(hashlib.sha512(payload).digest()),
            order_id=order_id,
            # One execution per order, whatever the attempt: the chain refuses a second.
            idempotency_key=f"{order_id}:swap",
            token_in=token_in,
            token_out=token_out,
            legs=legs,
            min_amount_out=min_amount_out,
            recent_blockhash_slot=slot,
        )

    async def submit(self, tx: SignedTransaction) -> str:
        """Send the transaction; returns its signature. Transient faults raise."""
        await self._latency(self.config.execution_latency_ms * 0.1)
        if await self.find_landed(tx.idempotency_key) is not None:
            return tx.signature  # already executed: confirm will report the earlier one
        if self._fault():
            raise MarketError(MarketErrorCode.ACCOUNT_IN_USE, "a writable account is locked by another tx")
        return tx.signature

    async def confirm(self, tx: SignedTransaction) -> Landed:
        """Wait for the transaction to land and execute it, at most once per key."""
        await self._latency(self.config.execution_latency_ms * 0.8)
        earlier = await self.find_landed(tx.idempotency_key)
        if earlier is not None:
            return earlier
        if self.current_slot() > tx.last_valid_slot:
            raise MarketError(
                MarketErrorCode.BLOCKHASH_EXPIRED,
                f"blockhash of slot {tx.recent_blockhash_slot} expired",
            )
        try:
            return await self._land(tx)
        except IntegrityError:
            # Another process landed the same key a moment ago: report that one.
            landed = await self.find_landed(tx.idempotency_key)
            if landed is None:
                raise
            return landed

    async def find_landed(self, idempotency_key: str) -> Landed | None:
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(ChainTransaction).where(col(ChainTransaction.idempotency_key) == idempotency_key)
                )
            ).scalar_one_or_none()
        if row is None:
            return None
        return Landed(
            tx_hash=row.tx_hash,
            amount_in=_units(row.amount_in, row.token_in),
            amount_out=_units(row.amount_out, row.token_out),
            slot=row.slot,
        )

    # -- internals -----------------------------------------------------------

    async def _land(self, tx: SignedTransaction) -> Landed:
        async with self._sessions() as session, session.begin():
            pairs = [f"{tx.token_in}/{tx.token_out}", f"{tx.token_out}/{tx.token_in}"]
            rows = (
                await session.execute(
                    select(MarketPool)
                    .where(
                        col(MarketPool.pair).in_(pairs),
                        col(MarketPool.dex).in_([leg.dex for leg in tx.legs]),
                    )
                    .order_by(col(MarketPool.pool_id))  # a fixed lock order: no deadlocks
                    .with_for_update()
                )
            ).scalars()
            pools = {row.dex: (row, Pool.from_state(row.state)) for row in rows}
            total_out = 0
            updated: list[tuple[MarketPool, Pool]] = []
            for leg in tx.legs:
                if leg.dex not in pools:
                    raise MarketError(MarketErrorCode.POOL_NOT_FOUND, f"no {leg.dex} pool")
                row, pool = pools[leg.dex]
                result = pool.swap_exact_in(tx.token_in, leg.amount_in)
                total_out += result.amount_out
                updated.append((row, pool.after_swap(tx.token_in, result)))
            if total_out < tx.min_amount_out:
                raise MarketError(
                    MarketErrorCode.SLIPPAGE_EXCEEDED,
                    f"output {_human(total_out, tx.token_out)} {tx.token_out} below minimum "
                    f"{_human(tx.min_amount_out, tx.token_out)}",
                )
            await self._settle(session, tx.token_in, -tx.amount_in)
            await self._settle(session, tx.token_out, total_out)
            now = utcnow()
            for row, pool in updated:
                row.state = pool.to_state()
                row.updated_at = now
            slot = self.current_slot()
            session.add(
                ChainTransaction(
                    tx_hash=tx.signature,
                    idempotency_key=tx.idempotency_key,
                    order_id=tx.order_id,
                    dex=tx.legs[0].dex if len(tx.legs) == 1 else "split",
                    token_in=tx.token_in,
                    token_out=tx.token_out,
                    legs=[
                        {"dex": leg.dex, "amount_in": _human(leg.amount_in, tx.token_in)} for leg in tx.legs
                    ],
                    amount_in=from_base_units(tx.amount_in, _decimals(tx.token_in)),
                    amount_out=from_base_units(total_out, _decimals(tx.token_out)),
                    slot=slot,
                    at=now,
                )
            )
        return Landed(tx.signature, tx.amount_in, total_out, slot)

    async def _settle(self, session: AsyncSession, token: str, delta: int) -> None:
        balance = await session.get(WalletBalance, token, with_for_update=True)
        if balance is None:
            balance = WalletBalance(token=token, amount=Decimal(0))
            session.add(balance)
        if balance.amount + delta < 0:
            raise MarketError(
                MarketErrorCode.INSUFFICIENT_FUNDS,
                f"wallet holds {_human(int(balance.amount), token)} {token}",
            )
        balance.amount += delta

    async def _pool(self, dex: str, token_in: str, token_out: str) -> Pool:
        for pool in pools_for_pair(await self.pools(), token_in, token_out):
            if pool.dex == dex:
                return pool
        raise MarketError(MarketErrorCode.POOL_NOT_FOUND, f"{dex} has no {token_in}/{token_out} pool")

    async def _latency(self, mean_ms: float) -> None:
        if mean_ms > 0:
            await asyncio.sleep(self._rng.uniform(0.5, 1.5) * mean_ms / 1000)

    def _fault(self) -> bool:
        return self.config.failure_rate > 0 and self._rng.random() < self.config.failure_rate


def _decimals(symbol: str) -> int:
    token = find_token(symbol)
    if token is None:
        raise MarketError(MarketErrorCode.INVALID_ORDER, f"unknown token {symbol}")
    return token.decimals


def _units(amount: Decimal, symbol: str) -> int:
    return to_base_units(amount, _decimals(symbol))


def _human(amount: int, symbol: str) -> str:
    return format(from_base_units(amount, _decimals(symbol)).normalize(), "f")
