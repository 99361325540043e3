"""The simulated venues and chain, with their state in PostgreSQL.

Every API and worker process talks to the same market: pools, the wallet and executed
transactions are rows, and a transaction lands in one database transaction that locks
the pools it trades against. Latency and faults follow the ORDER_ENGINE_SIM_* settings
of the process that calls in (the worker); time comes from an injectable clock.

The chain: slots of 400 ms; a blockhash is valid for 150 slots; a submitted transaction
lands with some probability each slot (the wait scales with
ORDER_ENGINE_SIM_EXECUTION_LATENCY_MS, 0 lands at once). Landing verifies the signature
and the blockhash, executes each leg against the pool as it is *then*, and refuses the
whole transaction when the output is below its minimum (SLIPPAGE_EXCEEDED). A
transaction whose idempotency key already executed is never executed again.
"""

from __future__ import annotations

import asyncio
import base64
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from market.errors import MarketError, MarketErrorCode
from market.pools import Pool, SwapResult, genesis_pools, pool_from_state
from market.tokens import find_token, from_base_units, to_base_units
from market.transactions import (
    WALLET,
    DecodedSwap,
    InvalidTransaction,
    SwapLeg,
    blockhash_for_slot,
    build_swap,
    decode_swap,
)
from storage.models import ChainTransaction, MarketPool, WalletBalance, utcnow

SLOT_MS = 400
BLOCKHASH_VALID_SLOTS = 150
GENESIS_WALLET = {"SOL": Decimal(10_000), "USDC": Decimal(10_000_000), "USDT": Decimal(10_000_000)}
# Each venue's quote endpoint allows this many requests per second per client (a token
# bucket); past it, it answers 429. Off when faults are off (failure rate 0).
QUOTE_RATE_PER_S = 25.0
QUOTE_BURST = 50


@dataclass(frozen=True)
class SimulationConfig:
    quote_latency_ms: float = 200
    execution_latency_ms: float = 2500
    failure_rate: float = 0.05  # per submit try; 0 turns every random fault off
    seed: int | None = None


@dataclass(frozen=True)
class Quote:
    pool: Pool
    result: SwapResult
    slot: int
    # amount_in -> amount_out at the amounts the router asks about, from the same state.
    curve: dict[int, int]


@dataclass(frozen=True)
class SignedTransaction:
    signature: str
    raw: bytes
    idempotency_key: str
    recent_blockhash_slot: int

    @property
    def last_valid_slot(self) -> int:
        return self.recent_blockhash_slot + BLOCKHASH_VALID_SLOTS


@dataclass(frozen=True)
class Landed:
    tx_hash: str
    amount_in: int
    amount_out: int
    slot: int


class _TokenBucket:
    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.updated = float(burst), clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


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
        self._quote_limits: dict[str, _TokenBucket] = {}
        self._known_pairs: frozenset[frozenset[str]] | None = None

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
                await session.execute(
                    insert(WalletBalance)
                    .values(token=symbol, amount=to_base_units(amount, _decimals(symbol)))
                    .on_conflict_do_nothing()
                )

    async def pools(self, token_a: str | None = None, token_b: str | None = None) -> list[Pool]:
        """Every pool, or the pools that trade the pair (token_a, token_b)."""
        query = select(MarketPool).order_by(col(MarketPool.pool_id))
        if token_a is not None and token_b is not None:
            query = query.where(col(MarketPool.pair).in_([f"{token_a}/{token_b}", f"{token_b}/{token_a}"]))
        async with self._sessions() as session:
            rows = await session.execute(query)
            return [pool_from_state(row.state) for row in rows.scalars()]

    async def fund_wallet(self, token: str, units: int) -> int:
        """Add `units` of `token` to the wallet; returns the new balance."""
        async with self._sessions() as session, session.begin():
            await self._settle(session, token, units)
            balance = await session.get(WalletBalance, token)
            assert balance is not None
            return int(balance.amount)

    async def wallet(self) -> dict[str, int]:
        async with self._sessions() as session:
            rows = await session.execute(select(WalletBalance))
            return {row.token: int(row.amount) for row in rows.scalars()}

    @property
    def wallet_address(self) -> str:
        return str(WALLET.pubkey())

    def now(self) -> float:
        return self._clock()

    def current_slot(self) -> int:
        return int(self._clock() * 1000) // SLOT_MS

    # -- the venue interface: quote, build, submit, confirm -----------------

    async def quote(
        self, dex: str, token_in: str, token_out: str, amount_in: int, points: list[int]
    ) -> Quote:
        """The venue's quote for `amount_in`, and its output at each of `points`."""
        await self._latency(self.config.quote_latency_ms)
        if self.config.failure_rate > 0:
            bucket = self._quote_limits.setdefault(
                dex, _TokenBucket(QUOTE_RATE_PER_S, QUOTE_BURST, self._clock)
            )
            if not bucket.take():
                raise MarketError(MarketErrorCode.RATE_LIMITED, f"{dex} answered 429 Too Many Requests")
        pool = await self._pool(dex, token_in, token_out)
        now = self.now()
        curve = {amount: pool.quote_swap(token_in, amount, now).amount_out for amount in points}
        return Quote(pool, pool.quote_swap(token_in, amount_in, now), self.current_slot(), curve)

    async def build(
        self, *, idempotency_key: str, token_in: str, token_out: str, legs: list[SwapLeg]
    ) -> SignedTransaction:
        """A signed transaction against a recent blockhash; refuses what the wallet cannot pay."""
        await self._latency(self.config.execution_latency_ms * 0.1)
        await self._learn_tokens(token_in, token_out)
        balance = (await self.wallet()).get(token_in, 0)
        amount_in = sum(leg.amount_in for leg in legs)
        if balance < amount_in:
            raise MarketError(
                MarketErrorCode.INSUFFICIENT_FUNDS,
                f"wallet holds {_human(balance, token_in)} {token_in}, order needs {_human(amount_in, token_in)}",
            )
        slot = self.current_slot()
        signature, raw = build_swap(
            idempotency_key=idempotency_key, token_in=token_in, token_out=token_out, legs=legs, slot=slot
        )
        return SignedTransaction(signature, raw, idempotency_key, slot)

    async def submit(self, tx: SignedTransaction) -> str:
        """Send the transaction; returns its signature. Transient faults raise."""
        await self._latency(self.config.execution_latency_ms * 0.1)
        await self._decode_learning(tx.raw)  # the RPC node rejects what is not a valid signed transaction
        if await self.find_landed(tx.idempotency_key) is not None:
            return tx.signature  # already executed: confirm reports the earlier one
        if self._fault():
            raise MarketError(
                MarketErrorCode.ACCOUNT_IN_USE, "a writable account is locked by another transaction"
            )
        return tx.signature

    async def confirm(self, tx: SignedTransaction) -> Landed:
        """Wait slot by slot until the transaction lands, then execute it (once per key)."""
        wait_ms = self.config.execution_latency_ms * 0.8
        if wait_ms > 0:
            # A slot of the wait lasts SLOT_MS scaled with the latency setting; the
            # transaction lands in each with probability 1/5, so 5 slots on average.
            slot_s = SLOT_MS / 1000 * self.config.execution_latency_ms / 2500
            while True:
                await asyncio.sleep(slot_s)
                if self._rng.random() < slot_s * 1000 / wait_ms or self.current_slot() > tx.last_valid_slot:
                    break
        earlier = await self.find_landed(tx.idempotency_key)
        if earlier is not None:
            return earlier
        try:
            return await self._land(await self._decode_learning(tx.raw))
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
            row.tx_hash, _units(row.amount_in, row.token_in), _units(row.amount_out, row.token_out), row.slot
        )

    # -- other traders ---------------------------------------------------------

    async def pairs(self) -> frozenset[frozenset[str]]:
        """Every pair some pool trades; learns the tokens listed since this process started."""
        async with self._sessions() as session:
            rows = await session.execute(select(col(MarketPool.pair)).distinct())
            pairs = frozenset(frozenset(pair.split("/")) for pair in rows.scalars())
        if any(find_token(symbol) is None for pair in pairs for symbol in pair):
            await self.pools()  # reading a pool registers the tokens it lists
        self._known_pairs = pairs
        return pairs

    def known_pairs(self) -> frozenset[frozenset[str]] | None:
        """The pairs as of the last pairs() call (None before the first): pools only
        ever open, so what is listed here still trades."""
        return self._known_pairs

    async def pool_ids(self) -> list[str]:
        async with self._sessions() as session:
            rows = await session.execute(select(col(MarketPool.pool_id)).order_by(col(MarketPool.pool_id)))
            return list(rows.scalars())

    async def trade(self, pool_id: str, decide: Callable[[Pool], tuple[str, int]]) -> SwapResult:
        """Someone else's swap against one pool (background trading, /sim/price).
        `decide` sees the pool as it is, under lock, and names the token and amount in."""
        async with self._sessions() as session, session.begin():
            row = await session.get(MarketPool, pool_id, with_for_update=True)
            if row is None:
                raise MarketError(MarketErrorCode.POOL_NOT_FOUND, f"no pool {pool_id}")
            token_in, amount_in = decide(pool_from_state(row.state))
            result, after = pool_from_state(row.state).swap(token_in, amount_in, self.now())
            row.state = after.to_state()
            row.updated_at = utcnow()
        return result

    async def move_price(self, pool_id: str, move_bps: int) -> tuple[Decimal, Decimal, str, int]:
        """Trade against one pool until its mid price has moved by `move_bps` (positive:
        the base token gets dearer). Returns price before, after, token and amount in."""
        seen: dict[str, Any] = {}

        def decide(pool: Pool) -> tuple[str, int]:
            seen["before"] = pool.mid_price()
            seen["trade"] = price_moving_trade(pool, move_bps, self.now())
            return seen["trade"]  # type: ignore[no-any-return]

        await self.trade(pool_id, decide)
        after = (await self.pool(pool_id)).mid_price()
        token_in, amount_in = seen["trade"]
        return seen["before"], after, token_in, amount_in

    async def pool(self, pool_id: str) -> Pool:
        async with self._sessions() as session:
            row = await session.get(MarketPool, pool_id)
        if row is None:
            raise MarketError(MarketErrorCode.POOL_NOT_FOUND, f"no pool {pool_id}")
        return pool_from_state(row.state)

    async def list_pool(self, pool: Pool) -> bool:
        """Add a new pool (a token listed later); False if that pool already exists."""
        async with self._sessions() as session, session.begin():
            inserted = await session.execute(
                insert(MarketPool)
                .values(
                    pool_id=pool.pool_id,
                    dex=pool.dex,
                    pair=pool.pair,
                    state=pool.to_state(),
                    updated_at=utcnow(),
                )
                .on_conflict_do_nothing()
                .returning(col(MarketPool.pool_id))
            )
            return inserted.first() is not None

    # -- internals -----------------------------------------------------------

    async def _learn_tokens(self, *symbols: str) -> None:
        """A token listed at run time is known once its pool has been read in this process."""
        if any(find_token(symbol) is None for symbol in symbols):
            await self.pools()

    async def _decode_learning(self, raw: bytes) -> DecodedSwap:
        try:
            return self._decode(raw)
        except MarketError:
            await self.pools()  # perhaps a mint listed since this process last read the pools
            return self._decode(raw)

    def _decode(self, raw: bytes) -> DecodedSwap:
        try:
            decoded = decode_swap(raw)
        except InvalidTransaction as error:
            raise MarketError(MarketErrorCode.INVALID_ORDER, str(error)) from None
        if decoded.signer != self.wallet_address:
            raise MarketError(MarketErrorCode.INVALID_ORDER, "not signed by the wallet")
        return decoded

    def _blockhash_valid(self, blockhash: str) -> bool:
        now = self.current_slot()
        return any(
            str(blockhash_for_slot(s)) == blockhash for s in range(now - BLOCKHASH_VALID_SLOTS, now + 1)
        )

    async def _land(self, swap: DecodedSwap) -> Landed:
        if not self._blockhash_valid(swap.blockhash):
            raise MarketError(
                MarketErrorCode.BLOCKHASH_EXPIRED, "the transaction's blockhash expired before it landed"
            )
        now = self.now()
        pairs = [f"{swap.token_in}/{swap.token_out}", f"{swap.token_out}/{swap.token_in}"]
        async with self._sessions() as session, session.begin():
            rows = (
                await session.execute(
                    select(MarketPool)
                    .where(
                        col(MarketPool.pair).in_(pairs),
                        col(MarketPool.dex).in_([leg.dex for leg in swap.legs]),
                    )
                    .order_by(col(MarketPool.pool_id))  # a fixed lock order: no deadlocks
                    .with_for_update()
                )
            ).scalars()
            pools = {row.dex: (row, pool_from_state(row.state)) for row in rows}
            total_out = 0
            for leg in swap.legs:
                if leg.dex not in pools:
                    raise MarketError(
                        MarketErrorCode.POOL_NOT_FOUND,
                        f"{leg.dex} has no {swap.token_in}/{swap.token_out} pool",
                    )
                row, pool = pools[leg.dex]
                self._check_open(pool)
                result, after = pool.swap(swap.token_in, leg.amount_in, now)
                if result.amount_out < leg.min_amount_out:
                    raise MarketError(
                        MarketErrorCode.SLIPPAGE_EXCEEDED,
                        f"{leg.dex} would pay {_human(result.amount_out, swap.token_out)} {swap.token_out}, "
                        f"minimum {_human(leg.min_amount_out, swap.token_out)}",
                    )
                total_out += result.amount_out
                pools[leg.dex] = (row, after)
            amount_in = sum(leg.amount_in for leg in swap.legs)
            # Wallet rows too are locked in one fixed order, whatever the direction.
            for token, delta in sorted([(swap.token_in, -amount_in), (swap.token_out, total_out)]):
                await self._settle(session, token, delta)
            stamp = utcnow()
            for row, after in pools.values():
                row.state = after.to_state()
                row.updated_at = stamp
            slot = self.current_slot()
            session.add(
                ChainTransaction(
                    tx_hash=swap.signature,
                    idempotency_key=swap.idempotency_key,
                    order_id=swap.idempotency_key.split(":")[0]
                    if swap.idempotency_key.startswith("ord_")
                    else None,
                    dex=swap.legs[0].dex if len(swap.legs) == 1 else "split",
                    token_in=swap.token_in,
                    token_out=swap.token_out,
                    legs=[
                        {"dex": leg.dex, "amount_in": _human(leg.amount_in, swap.token_in)}
                        for leg in swap.legs
                    ],
                    amount_in=from_base_units(amount_in, _decimals(swap.token_in)),
                    amount_out=from_base_units(total_out, _decimals(swap.token_out)),
                    slot=slot,
                    at=stamp,
                )
            )
        return Landed(swap.signature, amount_in, total_out, slot)

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
        for pool in await self.pools(token_in, token_out):
            if pool.dex == dex:
                self._check_open(pool)
                return pool
        raise MarketError(MarketErrorCode.POOL_NOT_FOUND, f"{dex} has no {token_in}/{token_out} pool")

    def _check_open(self, pool: Pool) -> None:
        if pool.opens_at > self.now():
            raise MarketError(
                MarketErrorCode.POOL_NOT_OPEN, f"{pool.pool_id} opens in {pool.opens_at - self.now():.0f} s"
            )

    async def _latency(self, mean_ms: float) -> None:
        if mean_ms > 0:
            await asyncio.sleep(self._rng.uniform(0.5, 1.5) * mean_ms / 1000)

    def _fault(self) -> bool:
        return self.config.failure_rate > 0 and self._rng.random() < self.config.failure_rate


def _insert_new(pool: Pool) -> Any:
    """Insert a pool unless one with its id exists (never overwrite market state)."""
    return (
        insert(MarketPool)
        .values(
            pool_id=pool.pool_id, dex=pool.dex, pair=pool.pair, state=pool.to_state(), updated_at=utcnow()
        )
        .on_conflict_do_nothing()
    )


def price_moving_trade(pool: Pool, move_bps: int, now: float) -> tuple[str, int]:
    """The smallest trade that moves `pool`'s mid price by at least `move_bps`."""
    target = pool.mid_price() * (1 + Decimal(move_bps) / 10_000)
    token_in = pool.quote if move_bps > 0 else pool.base

    def reached(amount: int) -> bool:
        price = pool.swap(token_in, amount, now)[1].mid_price()
        return price >= target if move_bps > 0 else price <= target

    high = 1
    while not reached(high):
        high *= 2
        if high > 2**80:
            raise MarketError(MarketErrorCode.INVALID_ORDER, f"{pool.pool_id} cannot move {move_bps} bps")
    low = high // 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if reached(middle) else (middle, high)
    return token_in, high


def encode_raw(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def decode_raw(text: str) -> bytes:
    return base64.b64decode(text)


def _decimals(symbol: str) -> int:
    token = find_token(symbol)
    if token is None:
        raise MarketError(MarketErrorCode.INVALID_ORDER, f"unknown token {symbol}")
    return token.decimals


def _units(amount: Decimal, symbol: str) -> int:
    return to_base_units(amount, _decimals(symbol))


def _human(amount: int, symbol: str) -> str:
    return format(from_base_units(amount, _decimals(symbol)).normalize(), "f")
