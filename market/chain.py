"""The simulated chain: it signs, simulates, accepts and lands swap transactions, in a
fee market (market/fees.py has the model).

Slots of 400 ms; a transaction is valid until its blockhash's slot + 150 (its last valid
block height). A sent transaction lands in each slot with a probability that rises with
its compute-unit price and falls with congestion; one not landed by its last valid block
height never lands (TRANSACTION_EXPIRED) and pays nothing. ORDER_ENGINE_SIM_EXECUTION_
LATENCY_MS=0 lands every transaction in the slot it is sent (tests, benchmarks).

Landing executes each leg against the pool as it is *then*, charging compute units as it
goes. A transaction that lands and fails (over its compute-unit limit, below its minimum,
a pool that cannot fill it) executes nothing but pays its fee: 5 000 lamports per
signature + compute-unit limit × price / 10⁶ + its tip. A public transaction may be
sandwiched on its way (market/searchers.py); a tipped one goes through the block
engine's private path and never is. A transaction whose idempotency key already executed
is never executed again: landing is one PostgreSQL transaction that locks the pools and
balances it touches and inserts the executed transaction under a unique key.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts.landing import LandingReport, LandingRequest
from core.domain import FailureStage, ReservationState
from core.formatting import format_amount, from_base_units
from market import pool_repository
from market.clock import MarketClock
from market.compute import estimate_limit, units_consumed, wraps_of
from market.errors import MarketError, MarketErrorCode
from market.fee_market import FeeMarket
from market.fees import compute_unit_price, fee, landing_probability
from market.ledger import Landed, LandedLeg, TransactionLedger, record_executed, record_failed
from market.pool_store import PoolStore
from market.pools import Pool, SwapResult
from market.searchers import Sandwich, bite, front_run, sandwich_odds, slack_bps
from market.tokens import decimals_of
from market.transactions import (
    ComputeBudget,
    DecodedSwap,
    InvalidTransaction,
    SwapLeg,
    blockhash_for_slot,
    build_swap,
    decode_swap,
)
from market.valuation import sol_value
from market.venues import SimulationConfig, check_open, simulated_latency
from storage.models import FailedTransaction, MarketPool, utcnow
from wallets import repository as wallet_repository
from wallets.errors import Overdrawn
from wallets.repository import Reservation, fee_held
from wallets.service import Wallets

BLOCKHASH_VALID_SLOTS = 150
# Failures of a transaction that landed: it executed nothing and pays its fee.
ON_CHAIN_FAILURES = frozenset(
    {
        MarketErrorCode.SLIPPAGE_EXCEEDED,
        MarketErrorCode.COMPUTE_BUDGET_EXCEEDED,
        MarketErrorCode.INSUFFICIENT_LIQUIDITY,
        MarketErrorCode.POOL_NOT_OPEN,
        MarketErrorCode.POOL_NOT_FOUND,
    }
)


@dataclass(frozen=True)
class SignedTransaction:
    signature: str
    raw: bytes
    idempotency_key: str
    recent_blockhash_slot: int
    budget: ComputeBudget | None = None  # what it asks and pays (also in `raw`)

    @property
    def last_valid_slot(self) -> int:
        """Its last valid block height: it may land up to and including this slot."""
        return self.recent_blockhash_slot + BLOCKHASH_VALID_SLOTS


def pool_key(dex: str, token_a: str, token_b: str) -> str:
    """A pool by venue and pair, whichever way the pair is named."""
    return f"{dex}:{'/'.join(sorted((token_a, token_b)))}"


def _shares(amount: int, legs: list[SwapLeg]) -> list[int]:
    """`amount` cut by the legs' shares (bps); the last leg takes what rounding leaves."""
    parts = [amount * leg.share_bps // 10_000 for leg in legs[:-1]]
    return [*parts, amount - sum(parts)]


def _landed_leg(leg: SwapLeg, amount_in: int, amount_out: int, pool: str) -> LandedLeg:
    return LandedLeg(
        leg.dex, amount_in, amount_out, leg.min_amount_out, pool, leg.token_in, leg.token_out, leg.hop
    )


@dataclass(frozen=True)
class Execution:
    """What a transaction's legs did (or would do) to the pools."""

    pools: dict[str, Pool]  # by dex, after
    filled: list[LandedLeg]
    amount_out: int
    units: int
    sandwiched: bool


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
        fees: FeeMarket,
    ) -> None:
        self._sessions = sessions
        self._pools, self._wallets, self._ledger = pools, wallets, ledger
        self._clock, self._config, self._rng, self._fees = clock, config, rng, fees

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
    ) -> SignedTransaction:
        """A transaction signed by the order's owner against a recent blockhash, with a
        compute-unit limit estimated from the route and a price from the fee market
        (raised for each earlier attempt that did not land); refuses what the order may
        not spend (its reservation, or the wallet's available)."""
        landing = landing or LandingRequest()
        await simulated_latency(self._rng, self._config.execution_latency_ms * 0.1)
        await self._pools.learn_tokens(token_in, token_out)
        owner = await order_spender(
            self._sessions,
            self._wallets,
            order_id,
            token_in,
            sum(leg.amount_in for leg in legs if leg.hop == 0),
        )
        limit = estimate_limit(
            await self._bins_crossed(token_in, token_out, legs), wraps_of(token_in, token_out)
        )
        price = compute_unit_price(landing, await self._fees.levels(), limit, escalation)
        budget = ComputeBudget(limit, price, landing.tip_lamports)
        slot = self._clock.current_slot()
        signature, raw = build_swap(
            signer=await self._wallets.keypair(owner),
            idempotency_key=idempotency_key,
            token_in=token_in,
            token_out=token_out,
            legs=legs,
            slot=slot,
            budget=budget,
        )
        return SignedTransaction(signature, raw, idempotency_key, slot, budget)

    async def submit(self, tx: SignedTransaction, simulate: bool = False) -> str:
        """Send the transaction (simulated first when asked: one that would fail is not
        sent, and pays nothing); returns its signature. Transient faults raise."""
        await simulated_latency(self._rng, self._config.execution_latency_ms * 0.1)
        swap = await self._decode_learning(
            tx.raw
        )  # the RPC node rejects what is not a valid signed transaction
        landed = await self._ledger.find(tx.idempotency_key)
        if landed is not None:
            return landed.tx_hash  # already executed (by an earlier run): that is the order's transaction
        if simulate:
            await self.simulate(tx, swap)
        if self._config.failure_rate > 0 and self._rng.random() < self._config.failure_rate:
            raise MarketError(
                MarketErrorCode.ACCOUNT_IN_USE,
                "a writable account is locked by another transaction",
                stage=FailureStage.LANDING,
            )
        return tx.signature

    async def simulate(self, tx: SignedTransaction, swap: DecodedSwap | None = None) -> Execution:
        """Run the transaction against the pools as they are now, changing nothing."""
        swap = swap or await self._decode_learning(tx.raw)
        try:
            self._check_valid(tx, swap, self._clock.current_slot())
            return self._execute(swap, await self._route_pools(swap.legs), self._clock.now(), value_sol=None)
        except MarketError as error:
            raise MarketError(
                error.code, f"simulation: {error.message}", stage=FailureStage.SIMULATION
            ) from None

    async def confirm(self, tx: SignedTransaction) -> Landed:
        """Wait slot by slot until the transaction lands, at most until its last valid
        block height; then execute it (once per key)."""
        earlier = await self._ledger.find(tx.idempotency_key)
        if earlier is not None:
            return earlier
        await self._raise_if_failed(tx.signature)
        swap = await self._decode_learning(tx.raw)
        sent = self._clock.current_slot()
        slot = sent if self._config.execution_latency_ms <= 0 else await self._landing_slot(tx, swap, sent)
        try:
            return await self._land(tx, swap, sent, slot)
        except IntegrityError:
            # Another process landed the same key a moment ago: report that one.
            landed = await self._ledger.find(tx.idempotency_key)
            if landed is None:
                await self._raise_if_failed(tx.signature)
                raise
            return landed

    async def find_landed(self, idempotency_key: str) -> Landed | None:
        return await self._ledger.find(idempotency_key)

    async def close(self, order_id: str, idempotency_key: str) -> Landed | None:
        """An order is about to be recorded FAILED: its transaction if one landed after
        all; otherwise its reservation is released, so that none can land any more."""
        async with self._sessions() as session, session.begin():
            held = await wallet_repository.reservation(session, order_id, lock=True)
            if held is None or held.state is ReservationState.SPENT:
                return await self._ledger.find(idempotency_key)
            await wallet_repository.release(session, order_id)
        return None

    async def _bins_crossed(
        self, token_in: str, token_out: str, legs: list[SwapLeg]
    ) -> list[tuple[str, int]]:
        """Each leg's dex and the DLMM bins it would cross now (what its compute units grow with)."""
        legs = [leg if leg.token_in else replace(leg, token_in=token_in, token_out=token_out) for leg in legs]
        pools = await self._route_pools(legs)
        now = self._clock.now()
        crossed = []
        for leg in legs:
            pool = pools.get(pool_key(leg.dex, leg.token_in, leg.token_out))
            if pool is None:
                crossed.append((leg.dex, 0))
            elif leg.exact_out:
                crossed.append(
                    (leg.dex, pool.swap_exact_out(leg.token_in, leg.min_amount_out, now)[0].bins_crossed)
                )
            else:
                crossed.append((leg.dex, pool.quote_swap(leg.token_in, leg.amount_in, now).bins_crossed))
        return crossed

    async def _route_pools(self, legs: Sequence[SwapLeg]) -> dict[str, Pool]:
        """The pools the legs trade, by pool_key (read, not locked)."""
        pools: dict[str, Pool] = {}
        for pair in {frozenset((leg.token_in, leg.token_out)) for leg in legs}:
            for pool in await self._pools.all(*sorted(pair)):
                pools[pool_key(pool.dex, pool.base, pool.quote)] = pool
        return pools

    async def _landing_slot(self, tx: SignedTransaction, swap: DecodedSwap, sent: int) -> int:
        """The slot the transaction lands in, rolled slot by slot at its price against
        that slot's congestion; TRANSACTION_EXPIRED once its last valid block height
        has passed without it landing (never sooner, never later)."""
        tipped, waited = swap.tip_lamports > 0, sent
        while True:
            now = await self._clock.after_slot(waited)
            for slot in range(waited + 1, now + 1):
                if slot > tx.last_valid_slot:
                    raise MarketError(
                        MarketErrorCode.TRANSACTION_EXPIRED,
                        f"not landed by its last valid block height {tx.last_valid_slot} "
                        f"(sent at {sent}, {swap.micro_lamports_per_cu} micro-lamports per CU)",
                        stage=FailureStage.LANDING,
                    )
                congestion = await self._fees.congestion_at(slot)
                chance = landing_probability(swap.micro_lamports_per_cu, congestion, tipped, slot - sent - 1)
                if self._rng.random() < chance:
                    return slot
            waited = now

    async def _raise_if_failed(self, signature: str) -> None:
        """A transaction that landed and failed stays failed (and paid once)."""
        failed = await self._ledger.find_failed(signature)
        if failed is not None:
            raise MarketError(
                MarketErrorCode(failed.code),
                failed.reason,
                stage=FailureStage.CHAIN,
                fee_lamports=failed.fee_lamports,
            )

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

    @staticmethod
    def _check_valid(tx: SignedTransaction, swap: DecodedSwap, slot: int) -> None:
        if swap.blockhash != str(blockhash_for_slot(tx.recent_blockhash_slot)):
            raise MarketError(MarketErrorCode.INVALID_ORDER, "the transaction names an unknown blockhash")
        if slot > tx.last_valid_slot:
            raise MarketError(
                MarketErrorCode.TRANSACTION_EXPIRED,
                f"its last valid block height {tx.last_valid_slot} has passed",
                stage=FailureStage.LANDING,
            )

    async def _value_sol(self, swap: DecodedSwap) -> float | None:
        """What the transaction is worth in SOL, when searchers may care (None: they may not)."""
        if self._config.failure_rate <= 0 or swap.tip_lamports > 0:
            return None
        amount = from_base_units(
            sum(leg.amount_in for leg in swap.legs if leg.hop == 0), decimals_of(swap.token_in)
        )
        if swap.token_in == "SOL":
            return float(amount)
        pools = await self._pools.all(swap.token_in, "SOL") or (
            await self._pools.all(swap.token_in, "USDC") + await self._pools.all("SOL", "USDC")
        )
        value = sol_value(pools, swap.token_in, amount)
        return float(value) if value is not None else None

    def _execute(
        self, swap: DecodedSwap, pools: dict[str, Pool], now: float, value_sol: float | None
    ) -> Execution:
        """The legs run hop by hop, each charged its compute units; raises the on-chain
        failure, if any. `pools` by pool_key; `value_sol` not None lets searchers at the
        largest leg of a direct exact-in swap."""
        pools = dict(pools)
        for leg in swap.legs:
            pool = pools.get(pool_key(leg.dex, leg.token_in, leg.token_out))
            if pool is None:
                raise MarketError(
                    MarketErrorCode.POOL_NOT_FOUND, f"{leg.dex} has no {leg.token_in}/{leg.token_out} pool"
                )
            check_open(pool, now)
        if swap.legs[0].exact_out:
            return self._execute_exact_out(swap, pools, now)
        filled: list[LandedLeg] = []
        used = units_consumed([], wraps_of(swap.token_in, swap.token_out))
        sandwiched = False
        hops = swap.legs[-1].hop + 1
        first = [leg for leg in swap.legs if leg.hop == 0]
        largest = max(first, key=lambda leg: leg.amount_in)
        total_in = sum(leg.amount_in for leg in first)
        paid_in = total_in
        for hop in range(hops):
            legs = [leg for leg in swap.legs if leg.hop == hop]
            amounts = [leg.amount_in for leg in legs] if hop == 0 else _shares(paid_in, legs)
            paid_out = 0
            for leg, amount in zip(legs, amounts, strict=True):
                key = pool_key(leg.dex, leg.token_in, leg.token_out)
                pool = pools[key]
                searcher = None
                if value_sol is not None and hops == 1 and leg is largest:
                    searcher = self._searcher(pool, swap, leg, value_sol * leg.amount_in / total_in, now)
                if searcher is not None:
                    pool, sandwiched = searcher.before_victim, True
                result, after = pool.swap(leg.token_in, amount, now)
                used = self._charge(used, leg, result, swap.compute_unit_limit)
                if not result.complete:  # the program fails the whole transaction
                    raise MarketError(
                        MarketErrorCode.INSUFFICIENT_LIQUIDITY,
                        f"{leg.dex} cannot fill {_human(amount, leg.token_in)} {leg.token_in}",
                    )
                if hops == 1 and result.amount_out < leg.min_amount_out:
                    raise MarketError(
                        MarketErrorCode.SLIPPAGE_EXCEEDED,
                        f"{leg.dex} would pay {_human(result.amount_out, leg.token_out)} {leg.token_out}, "
                        f"minimum {_human(leg.min_amount_out, leg.token_out)}",
                    )
                if searcher is not None:  # the searcher sells back right after
                    _, after = after.swap(leg.token_out, searcher.front_out, now)
                filled.append(_landed_leg(leg, amount, result.amount_out, pool.pool_id))
                pools[key] = after
                paid_out += result.amount_out
            paid_in = paid_out
        minimum = sum(leg.min_amount_out for leg in swap.legs if leg.hop == hops - 1)
        if paid_in < minimum:
            raise MarketError(
                MarketErrorCode.SLIPPAGE_EXCEEDED,
                f"the route would pay {_human(paid_in, swap.token_out)} {swap.token_out}, "
                f"minimum {_human(minimum, swap.token_out)}",
            )
        return Execution(pools, filled, paid_in, used, sandwiched)

    def _execute_exact_out(self, swap: DecodedSwap, pools: dict[str, Pool], now: float) -> Execution:
        """Exact out: from the last hop back, what each leg must pay out and so take in
        (the pools as they are now); then every leg swaps exactly that. The whole may
        take no more than the first hop's legs allow."""
        hops = swap.legs[-1].hop + 1
        outs: dict[int, int] = {}  # leg index -> exact output
        wanted = 0
        for hop in reversed(range(hops)):
            indexed = [(i, leg) for i, leg in enumerate(swap.legs) if leg.hop == hop]
            legs = [leg for _, leg in indexed]
            amounts = [leg.min_amount_out for leg in legs] if hop == hops - 1 else _shares(wanted, legs)
            wanted = 0
            for (index, leg), amount in zip(indexed, amounts, strict=True):
                outs[index] = amount
                needed = pools[pool_key(leg.dex, leg.token_in, leg.token_out)].swap_exact_out(
                    leg.token_in, amount, now
                )[0]
                if not needed.complete:
                    raise MarketError(
                        MarketErrorCode.INSUFFICIENT_LIQUIDITY,
                        f"{leg.dex} cannot pay out {_human(amount, leg.token_out)} {leg.token_out}",
                    )
                wanted += needed.amount_in
        most = sum(leg.amount_in for leg in swap.legs if leg.hop == 0)
        if wanted > most:
            raise MarketError(
                MarketErrorCode.SLIPPAGE_EXCEEDED,
                f"the route would take {_human(wanted, swap.token_in)} {swap.token_in}, "
                f"at most {_human(most, swap.token_in)}",
            )
        filled: list[LandedLeg] = []
        used = units_consumed([], wraps_of(swap.token_in, swap.token_out))
        for index, leg in enumerate(swap.legs):
            key = pool_key(leg.dex, leg.token_in, leg.token_out)
            result, after = pools[key].swap_exact_out(leg.token_in, outs[index], now)
            used = self._charge(used, leg, result, swap.compute_unit_limit)
            filled.append(_landed_leg(leg, result.amount_in, result.amount_out, pools[key].pool_id))
            pools[key] = after
        return Execution(
            pools, filled, sum(outs[i] for i, leg in enumerate(swap.legs) if leg.hop == hops - 1), used, False
        )

    @staticmethod
    def _charge(used: int, leg: SwapLeg, result: SwapResult, limit: int) -> int:
        """The runtime charges each leg's compute units as it runs it."""
        used += units_consumed([(leg.dex, result.bins_crossed)], 0) - units_consumed([], 0)
        if used > limit:
            raise MarketError(
                MarketErrorCode.COMPUTE_BUDGET_EXCEEDED,
                f"{used} compute units used by the {leg.dex} leg, the limit is {limit}",
            )
        return used

    def _searcher(
        self, pool: Pool, swap: DecodedSwap, leg: SwapLeg, value_sol: float, now: float
    ) -> Sandwich | None:
        """A searcher's front-run of this leg, if one is drawn and worth it."""
        clean = pool.swap(swap.token_in, leg.amount_in, now)[0]
        if not clean.complete or clean.amount_out <= leg.min_amount_out:
            return None
        slack = slack_bps(clean.amount_out, leg.min_amount_out)
        if self._rng.random() >= sandwich_odds(value_sol, slack):
            return None
        return front_run(
            pool,
            swap.token_in,
            leg.amount_in,
            leg.min_amount_out,
            clean.amount_out,
            bite(value_sol, slack),
            now,
        )

    async def _land(self, tx: SignedTransaction, swap: DecodedSwap, sent: int, slot: int) -> Landed:
        self._check_valid(tx, swap, slot)
        owner = await self._wallets.owner_of(swap.signer)
        if owner is None:
            raise MarketError(MarketErrorCode.INVALID_ORDER, "signed by no known wallet")
        order_id = swap.idempotency_key.split(":")[0] if swap.idempotency_key.startswith("ord_") else None
        fees = fee(swap.compute_unit_limit, swap.micro_lamports_per_cu, swap.tip_lamports)
        value_sol = await self._value_sol(swap)
        now = self._clock.now()
        failure: MarketError | None = None
        landed: Landed | None = None
        async with self._sessions() as session, session.begin():
            held = await wallet_repository.reservation(session, order_id, lock=True) if order_id else None
            if held is not None and held.state is not ReservationState.HELD:
                raise MarketError(
                    MarketErrorCode.ORDER_CLOSED, f"{order_id} ended; its reservation was {held.state}"
                )
            locked = await pool_repository.lock_pools(
                session, {(leg.dex, leg.token_in, leg.token_out) for leg in swap.legs}
            )
            try:
                execution = self._execute(
                    swap, {key: pool for key, (_, pool) in locked.items()}, now, value_sol
                )
            except MarketError as error:
                if error.code not in ON_CHAIN_FAILURES:
                    raise
                failure = error
                await self._charge_failed(
                    session, swap, owner, order_id, held, slot, error, fees.total_lamports
                )
            else:
                report = LandingReport(
                    fees,
                    swap.compute_unit_limit,
                    execution.units,
                    swap.micro_lamports_per_cu,
                    sent,
                    slot,
                    execution.sandwiched,
                )
                await self._record_landed(
                    session, swap, owner, order_id, held, locked, execution, report, slot
                )
                amount_in = sum(leg.amount_in for leg in execution.filled if leg.hop == 0)
                landed = Landed(
                    swap.signature, amount_in, execution.amount_out, slot, tuple(execution.filled), report
                )
        if failure is not None:
            raise MarketError(
                failure.code, failure.message, stage=FailureStage.CHAIN, fee_lamports=fees.total_lamports
            )
        assert landed is not None
        return landed

    async def _record_landed(
        self,
        session: AsyncSession,
        swap: DecodedSwap,
        owner: str,
        order_id: str | None,
        held: Reservation | None,
        locked: dict[str, tuple[MarketPool, Pool]],
        execution: Execution,
        report: LandingReport,
        slot: int,
    ) -> None:
        """The swap's effects: the owner's balances (the fill and the fee), the pools, the
        reservation spent, the executed transaction recorded under its unique key."""
        amount_in, paid = (
            sum(leg.amount_in for leg in execution.filled if leg.hop == 0),
            report.fees.total_lamports,
        )
        # The reservation becomes the spend: what it held leaves `reserved`, what was
        # spent leaves `total` (a route that spent less gives the rest back).
        deltas: dict[str, tuple[int, int]] = {}
        _add(deltas, swap.token_in, -amount_in, -int(held.amount) if held is not None else 0)
        _add(deltas, "SOL", -paid, -fee_held(held) if held is not None else 0)
        _add(deltas, swap.token_out, execution.amount_out, 0)
        await _move(session, owner, deltas)
        if held is not None:
            wallet_repository.spend(held, amount_in, paid)
        stamp = utcnow()
        for key, (row, _) in locked.items():
            row.state = execution.pools[key].to_state()
            row.updated_at = stamp
        record_executed(
            session,
            Landed(swap.signature, amount_in, execution.amount_out, slot, tuple(execution.filled), report),
            idempotency_key=swap.idempotency_key,
            order_id=order_id,
            dex=swap.legs[0].dex if len({leg.dex for leg in swap.legs}) == 1 else "split",
            token_in=swap.token_in,
            token_out=swap.token_out,
            at=stamp,
        )

    @staticmethod
    async def _charge_failed(
        session: AsyncSession,
        swap: DecodedSwap,
        owner: str,
        order_id: str | None,
        held: Reservation | None,
        slot: int,
        error: MarketError,
        paid: int,
    ) -> None:
        """A transaction that landed and failed pays its fee, once (keyed by signature):
        from the order's fee budget, beyond it from the wallet's available SOL, and beyond
        that from the SOL the order itself holds to spend (a landed transaction's fee
        payer pays; `total ≥ reserved` must hold). A wallet that cannot pay it at all
        could not have landed it: that raises, and nothing moves."""
        if not await record_failed(
            session,
            FailedTransaction(
                signature=swap.signature,
                idempotency_key=swap.idempotency_key,
                order_id=order_id,
                owner=owner,
                code=str(error.code),
                reason=error.message,
                fee_lamports=paid,
                slot=slot,
                at=utcnow(),
            ),
        ):
            return  # charged when it first landed
        from_budget = min(paid, fee_held(held)) if held is not None else 0
        available = await wallet_repository.available(session, owner, "SOL")
        from_held_amount = max(paid - from_budget - available, 0)
        if from_held_amount > (int(held.amount) if held is not None and held.token == "SOL" else 0):
            raise MarketError(
                MarketErrorCode.INSUFFICIENT_FUNDS,
                f"the fee payer cannot pay the fee of {_human(paid, 'SOL')} SOL",
                stage=FailureStage.LANDING,
            )
        await _move(session, owner, {"SOL": (-paid, -from_budget - from_held_amount)})
        if held is not None:
            wallet_repository.charge_fee(held, paid, from_held_amount)


async def _move(session: AsyncSession, owner: str, deltas: dict[str, tuple[int, int]]) -> None:
    """The owner's balances moved within the landing; INSUFFICIENT_FUNDS when a total
    would fall below what stays reserved."""
    try:
        await wallet_repository.move(session, owner, deltas)
    except Overdrawn as short:
        raise MarketError(
            MarketErrorCode.INSUFFICIENT_FUNDS,
            f"wallet holds {_human(short.available, short.token)} {short.token} available",
        ) from None


async def order_spender(
    sessions: async_sessionmaker[AsyncSession], wallets: Wallets, order_id: str, token_in: str, amount_in: int
) -> str:
    """The owner whose wallet the order spends from, if it may spend `amount_in` (its
    reservation, or the wallet's available for an order accepted before reservations)."""
    async with sessions() as session:
        held = await wallet_repository.reservation(session, order_id)
    owner = held.owner if held is not None else await wallets.owner_of_order(order_id)
    if owner is None:
        raise MarketError(MarketErrorCode.INVALID_ORDER, f"no order {order_id}")
    if held is not None and held.state is not ReservationState.HELD:
        raise MarketError(MarketErrorCode.ORDER_CLOSED, f"{order_id} ended; its reservation was {held.state}")
    if held is not None and amount_in > held.amount:
        raise MarketError(
            MarketErrorCode.INSUFFICIENT_FUNDS,
            f"the route spends {_human(amount_in, token_in)} {token_in}, "
            f"{_human(int(held.amount), token_in)} were reserved",
        )
    if held is None:  # accepted before reservations existed: the wallet's available
        balances = {b.token: b.available for b in await wallets.balances(owner)}
        if balances.get(token_in, 0) < amount_in:
            raise MarketError(
                MarketErrorCode.INSUFFICIENT_FUNDS,
                f"wallet holds {_human(balances.get(token_in, 0), token_in)} {token_in} available, "
                f"order needs {_human(amount_in, token_in)}",
            )
    return owner


def _add(deltas: dict[str, tuple[int, int]], token: str, total: int, reserved: int) -> None:
    before = deltas.get(token, (0, 0))
    deltas[token] = (before[0] + total, before[1] + reserved)


def encode_raw(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def decode_raw(text: str) -> bytes:
    return base64.b64decode(text)


def _human(amount: int, symbol: str) -> str:
    return format_amount(amount, decimals_of(symbol))
