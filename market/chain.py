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
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.domain import ReservationState
from core.formatting import format_amount, from_base_units
from market.clock import SLOT_MS, MarketClock
from market.errors import MarketError, MarketErrorCode
from market.storage import Landed, LandedLeg, PoolStore, TransactionLedger, WalletStore
from market.tokens import decimals_of
from market.transactions import (
    DecodedSwap,
    InvalidTransaction,
    SwapLeg,
    blockhash_for_slot,
    build_swap,
    decode_swap,
)
from market.venues import SimulationConfig, check_open, simulated_latency
from market.wallet import Wallets
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
        wallets: Wallets,
        ledger: TransactionLedger,
        clock: MarketClock,
        config: SimulationConfig,
        rng: random.Random,
    ) -> None:
        self._sessions = sessions
        self._pools, self._wallets, self._ledger = pools, wallets, ledger
        self._clock, self._config, self._rng = clock, config, rng

    async def build(
        self, *, order_id: str, idempotency_key: str, token_in: str, token_out: str, legs: list[SwapLeg]
    ) -> SignedTransaction:
        """A transaction signed by the order's owner against a recent blockhash; refuses
        what the order may not spend (its reservation, or the wallet's available)."""
        await simulated_latency(self._rng, self._config.execution_latency_ms * 0.1)
        await self._pools.learn_tokens(token_in, token_out)
        amount_in = sum(leg.amount_in for leg in legs)
        async with self._sessions() as session:
            held = await WalletStore.reservation(session, order_id)
        owner = held.owner if held is not None else await self._wallets.store.owner_of_order(order_id)
        if owner is None:
            raise MarketError(MarketErrorCode.INVALID_ORDER, f"no order {order_id}")
        if held is not None and held.state is not ReservationState.HELD:
            raise MarketError(
                MarketErrorCode.ORDER_CLOSED, f"{order_id} ended; its reservation was {held.state}"
            )
        if held is not None and amount_in > held.amount:
            raise MarketError(
                MarketErrorCode.INSUFFICIENT_FUNDS,
                f"the route spends {_human(amount_in, token_in)} {token_in}, "
                f"{_human(int(held.amount), token_in)} were reserved",
            )
        if held is None:  # accepted before reservations existed: the wallet's available
            balances = {b.token: int(b.total - b.reserved) for b in await self._wallets.store.balances(owner)}
            if balances.get(token_in, 0) < amount_in:
                raise MarketError(
                    MarketErrorCode.INSUFFICIENT_FUNDS,
                    f"wallet holds {_human(balances.get(token_in, 0), token_in)} {token_in} available, "
                    f"order needs {_human(amount_in, token_in)}",
                )
        slot = self._clock.current_slot()
        signature, raw = build_swap(
            signer=await self._wallets.keypair(owner),
            idempotency_key=idempotency_key,
            token_in=token_in,
            token_out=token_out,
            legs=legs,
            slot=slot,
        )
        return SignedTransaction(signature, raw, idempotency_key, slot)

    async def submit(self, tx: SignedTransaction) -> str:
        """Send the transaction; returns its signature. Transient faults raise."""
        await simulated_latency(self._rng, self._config.execution_latency_ms * 0.1)
        await self._decode_learning(tx.raw)  # the RPC node rejects what is not a valid signed transaction
        landed = await self._ledger.find(tx.idempotency_key)
        if landed is not None:
            return landed.tx_hash  # already executed (by an earlier run): that is the order's transaction
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

    async def close(self, order_id: str, idempotency_key: str) -> Landed | None:
        """An order is about to be recorded FAILED: its transaction if one landed after
        all; otherwise its reservation is released, so that none can land any more."""
        async with self._sessions() as session, session.begin():
            held = await WalletStore.reservation(session, order_id, lock=True)
            if held is None or held.state is ReservationState.SPENT:
                return await self._ledger.find(idempotency_key)
            await WalletStore.release_in(session, order_id)
        return None

    async def _decode_learning(self, raw: bytes) -> DecodedSwap:
        try:
            return self._decode(raw)
        except MarketError:
            await self._pools.all()  # perhaps a mint listed since this process last read the pools
            return self._decode(raw)

    @staticmethod
    def _decode(raw: bytes) -> DecodedSwap:
        try:
            return decode_swap(raw)
        except InvalidTransaction as error:
            raise MarketError(MarketErrorCode.INVALID_ORDER, str(error)) from None

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
        owner = await self._wallets.owner_of(swap.signer)
        if owner is None:
            raise MarketError(MarketErrorCode.INVALID_ORDER, "signed by no known wallet")
        order_id = swap.idempotency_key.split(":")[0] if swap.idempotency_key.startswith("ord_") else None
        now = self._clock.now()
        async with self._sessions() as session, session.begin():
            held = await WalletStore.reservation(session, order_id, lock=True) if order_id else None
            if held is not None and held.state is not ReservationState.HELD:
                raise MarketError(
                    MarketErrorCode.ORDER_CLOSED, f"{order_id} ended; its reservation was {held.state}"
                )
            pools = await PoolStore.lock_for_swap(
                session, swap.token_in, swap.token_out, [leg.dex for leg in swap.legs]
            )
            total_out = 0
            filled: list[LandedLeg] = []
            for leg in swap.legs:
                if leg.dex not in pools:
                    raise MarketError(
                        MarketErrorCode.POOL_NOT_FOUND,
                        f"{leg.dex} has no {swap.token_in}/{swap.token_out} pool",
                    )
                row, pool = pools[leg.dex]
                check_open(pool, now)
                result, after = pool.swap(swap.token_in, leg.amount_in, now)
                if not result.complete:  # the program fails the whole transaction
                    raise MarketError(
                        MarketErrorCode.INSUFFICIENT_LIQUIDITY,
                        f"{leg.dex} cannot fill {_human(leg.amount_in, swap.token_in)} {swap.token_in}",
                    )
                if result.amount_out < leg.min_amount_out:
                    raise MarketError(
                        MarketErrorCode.SLIPPAGE_EXCEEDED,
                        f"{leg.dex} would pay {_human(result.amount_out, swap.token_out)} {swap.token_out}, "
                        f"minimum {_human(leg.min_amount_out, swap.token_out)}",
                    )
                total_out += result.amount_out
                filled.append(LandedLeg(leg.dex, leg.amount_in, result.amount_out, leg.min_amount_out))
                pools[leg.dex] = (row, after)
            amount_in = sum(leg.amount_in for leg in swap.legs)
            # The reservation becomes the spend: what it held leaves `reserved`, what was
            # spent leaves `total` (a route that spent less gives the rest back).
            deltas = {swap.token_in: (-amount_in, -int(held.amount) if held is not None else 0)}
            out_total, out_reserved = deltas.get(swap.token_out, (0, 0))
            deltas[swap.token_out] = (out_total + total_out, out_reserved)
            await WalletStore.move(session, owner, deltas)
            if held is not None:
                held.state, held.spent, held.closed_at = ReservationState.SPENT, Decimal(amount_in), utcnow()
            stamp = utcnow()
            for row, after in pools.values():
                row.state = after.to_state()
                row.updated_at = stamp
            slot = self._clock.current_slot()
            session.add(
                ChainTransaction(
                    tx_hash=swap.signature,
                    idempotency_key=swap.idempotency_key,
                    order_id=order_id,
                    dex=swap.legs[0].dex if len(swap.legs) == 1 else "split",
                    token_in=swap.token_in,
                    token_out=swap.token_out,
                    legs=[
                        {
                            "dex": leg.dex,
                            "amount_in": _human(leg.amount_in, swap.token_in),
                            "amount_out": _human(leg.amount_out, swap.token_out),
                            "min_amount_out": _human(leg.min_amount_out, swap.token_out),
                        }
                        for leg in filled
                    ],
                    amount_in=from_base_units(amount_in, decimals_of(swap.token_in)),
                    amount_out=from_base_units(total_out, decimals_of(swap.token_out)),
                    slot=slot,
                    at=stamp,
                )
            )
        return Landed(swap.signature, amount_in, total_out, slot, tuple(filled))


def encode_raw(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def decode_raw(text: str) -> bytes:
    return base64.b64decode(text)


def _human(amount: int, symbol: str) -> str:
    return format_amount(amount, decimals_of(symbol))
