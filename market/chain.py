"""The simulated chain: it signs, accepts and lands swap transactions.

Slots of 400 ms; a blockhash is valid for 150 slots; a submitted transaction lands with
some probability each slot (the wait scales with ORDER_ENGINE_SIM_EXECUTION_LATENCY_MS,
0 lands at once). Landing verifies the signature and the blockhash, executes each leg
against the pool as it is *then*, and refuses the whole transaction when the output is
below its minimum (SLIPPAGE_EXCEEDED). A transaction whose idempotency key already
executed is never executed again: landing is one PostgreSQL transaction that locks the
pools and balances it touches and inserts the executed transaction under a unique key.
"""

from __future__ import annotations

import asyncio
import base64
import random
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.formatting import format_amount, from_base_units
from market.clock import SLOT_MS, MarketClock
from market.errors import MarketError, MarketErrorCode
from market.storage import BalanceStore, Landed, PoolStore, TransactionLedger
from market.tokens import decimals_of
from market.transactions import (
    WALLET,
    DecodedSwap,
    InvalidTransaction,
    SwapLeg,
    blockhash_for_slot,
    build_swap,
    decode_swap,
)
from market.venues import SimulationConfig, check_open, simulated_latency
from storage.models import ChainTransaction, utcnow

BLOCKHASH_VALID_SLOTS = 150


@dataclass(frozen=True)
class SignedTransaction:
    signature: str
    raw: bytes
    idempotency_key: str
    recent_blockhash_slot: int

    @property
    def last_valid_slot(self) -> int:
        return self.recent_blockhash_slot + BLOCKHASH_VALID_SLOTS


class Chain:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        pools: PoolStore,
        balances: BalanceStore,
        ledger: TransactionLedger,
        clock: MarketClock,
        config: SimulationConfig,
        rng: random.Random,
    ) -> None:
        self._sessions = sessions
        self._pools, self._balances, self._ledger = pools, balances, ledger
        self._clock, self._config, self._rng = clock, config, rng

    async def build(
        self, *, idempotency_key: str, token_in: str, token_out: str, legs: list[SwapLeg]
    ) -> SignedTransaction:
        """A signed transaction against a recent blockhash; refuses what the wallet cannot pay."""
        await simulated_latency(self._rng, self._config.execution_latency_ms * 0.1)
        await self._pools.learn_tokens(token_in, token_out)
        balance = (await self._balances.all()).get(token_in, 0)
        amount_in = sum(leg.amount_in for leg in legs)
        if balance < amount_in:
            raise MarketError(
                MarketErrorCode.INSUFFICIENT_FUNDS,
                f"wallet holds {_human(balance, token_in)} {token_in}, order needs {_human(amount_in, token_in)}",
            )
        slot = self._clock.current_slot()
        signature, raw = build_swap(
            idempotency_key=idempotency_key, token_in=token_in, token_out=token_out, legs=legs, slot=slot
        )
        return SignedTransaction(signature, raw, idempotency_key, slot)

    async def submit(self, tx: SignedTransaction) -> str:
        """Send the transaction; returns its signature. Transient faults raise."""
        await simulated_latency(self._rng, self._config.execution_latency_ms * 0.1)
        await self._decode_learning(tx.raw)  # the RPC node rejects what is not a valid signed transaction
        if await self._ledger.find(tx.idempotency_key) is not None:
            return tx.signature  # already executed: confirm reports the earlier one
        if self._config.failure_rate > 0 and self._rng.random() < self._config.failure_rate:
            raise MarketError(
                MarketErrorCode.ACCOUNT_IN_USE, "a writable account is locked by another transaction"
            )
        return tx.signature

    async def confirm(self, tx: SignedTransaction) -> Landed:
        """Wait slot by slot until the transaction lands, then execute it (once per key)."""
        wait_ms = self._config.execution_latency_ms * 0.8
        if wait_ms > 0:
            # A slot of the wait lasts SLOT_MS scaled with the latency setting; the
            # transaction lands in each with probability 1/5, so 5 slots on average.
            slot_s = SLOT_MS / 1000 * self._config.execution_latency_ms / 2500
            while True:
                await asyncio.sleep(slot_s)
                if (
                    self._rng.random() < slot_s * 1000 / wait_ms
                    or self._clock.current_slot() > tx.last_valid_slot
                ):
                    break
        earlier = await self._ledger.find(tx.idempotency_key)
        if earlier is not None:
            return earlier
        try:
            return await self._land(await self._decode_learning(tx.raw))
        except IntegrityError:
            # Another process landed the same key a moment ago: report that one.
            landed = await self._ledger.find(tx.idempotency_key)
            if landed is None:
                raise
            return landed

    async def find_landed(self, idempotency_key: str) -> Landed | None:
        return await self._ledger.find(idempotency_key)

    async def _decode_learning(self, raw: bytes) -> DecodedSwap:
        try:
            return self._decode(raw)
        except MarketError:
            await self._pools.all()  # perhaps a mint listed since this process last read the pools
            return self._decode(raw)

    @staticmethod
    def _decode(raw: bytes) -> DecodedSwap:
        try:
            decoded = decode_swap(raw)
        except InvalidTransaction as error:
            raise MarketError(MarketErrorCode.INVALID_ORDER, str(error)) from None
        if decoded.signer != str(WALLET.pubkey()):
            raise MarketError(MarketErrorCode.INVALID_ORDER, "not signed by the wallet")
        return decoded

    def _blockhash_valid(self, blockhash: str) -> bool:
        now = self._clock.current_slot()
        return any(
            str(blockhash_for_slot(s)) == blockhash for s in range(now - BLOCKHASH_VALID_SLOTS, now + 1)
        )

    async def _land(self, swap: DecodedSwap) -> Landed:
        if not self._blockhash_valid(swap.blockhash):
            raise MarketError(
                MarketErrorCode.BLOCKHASH_EXPIRED, "the transaction's blockhash expired before it landed"
            )
        now = self._clock.now()
        async with self._sessions() as session, session.begin():
            pools = await PoolStore.lock_for_swap(
                session, swap.token_in, swap.token_out, [leg.dex for leg in swap.legs]
            )
            total_out = 0
            for leg in swap.legs:
                if leg.dex not in pools:
                    raise MarketError(
                        MarketErrorCode.POOL_NOT_FOUND,
                        f"{leg.dex} has no {swap.token_in}/{swap.token_out} pool",
                    )
                row, pool = pools[leg.dex]
                check_open(pool, now)
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
                await BalanceStore.add_in(session, token, delta)
            stamp = utcnow()
            for row, after in pools.values():
                row.state = after.to_state()
                row.updated_at = stamp
            slot = self._clock.current_slot()
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
                    amount_in=from_base_units(amount_in, decimals_of(swap.token_in)),
                    amount_out=from_base_units(total_out, decimals_of(swap.token_out)),
                    slot=slot,
                    at=stamp,
                )
            )
        return Landed(swap.signature, amount_in, total_out, slot)


def encode_raw(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def decode_raw(text: str) -> bytes:
    return base64.b64decode(text)


def _human(amount: int, symbol: str) -> str:
    return format_amount(amount, decimals_of(symbol))
