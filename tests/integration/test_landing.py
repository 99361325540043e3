"""Landing on the simulated chain, against real PostgreSQL, on a clock the test turns:
expiry exactly at the last valid block height, fees to the lamport (a transaction that
lands and fails pays too), simulations that pay nothing, and searchers that sandwich
large public transactions but never tipped ones."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from itertools import count

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.domain import FailureStage, ReservationState
from core.settings import Settings
from devstack import InfraUrls
from market import Market, build_market
from market.chain import SignedTransaction
from market.clock import SLOT_MS
from market.errors import MarketError, MarketErrorCode
from market.fees import fee
from market.transactions import ComputeBudget, SwapLeg, build_swap
from storage.database import create_engine, create_sessionmaker
from storage.models import WalletBalance
from tests.rows import insert_order
from wallets import repository as wallet_repository
from wallets.schemas import Hold
from wallets.service import Wallets

pytestmark = pytest.mark.usefixtures("worker")  # the market exists (genesis pools)

SOL = 10**9
PAIR = ("SOL", "USDT")  # the pools these tests trade are put back as they were
keys = count()


@dataclass
class TurnedClock:
    """Time that passes only when the chain waits."""

    t: float = 1_800_000_000.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds

    @property
    def slot(self) -> int:
        return int(self.t * 1000) // SLOT_MS


@dataclass
class Dice(random.Random):
    """The chain's dice: `lands(slot)` decides each roll; every roll's slot is kept."""

    clock: TurnedClock
    lands: Callable[[int], bool]
    rolled: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(0)

    def random(self) -> float:
        self.rolled.append(self.clock.slot)
        return 0.0 if self.lands(self.clock.slot) else 0.999_999


@pytest.fixture
async def sessions(infra: InfraUrls) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(infra.database_url, pool_size=5)
    try:
        async with engine.begin() as connection:
            saved = (
                await connection.execute(
                    text("SELECT pool_id, state FROM market_pools WHERE pair IN (:a, :b)"),
                    {"a": "/".join(PAIR), "b": "/".join(reversed(PAIR))},
                )
            ).all()
        yield create_sessionmaker(engine)
    finally:
        async with engine.begin() as connection:
            for pool_id, state in saved:
                await connection.execute(
                    text(
                        "UPDATE market_pools SET state = CAST(:state AS jsonb), updated_at = now() WHERE pool_id = :id"
                    ),
                    {"state": json.dumps(state), "id": pool_id},
                )
        await engine.dispose()


def chain_market(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    clock: TurnedClock,
    *,
    latency_ms: float = 2500,
    failure_rate: float = 0,
) -> Market:
    tuned = settings.model_copy(
        update={"sim_execution_latency_ms": latency_ms, "sim_failure_rate": failure_rate, "sim_seed": 11}
    )
    return build_market(tuned, sessions, clock=clock.now, sleep=clock.sleep)


async def signed(
    market: Market,
    owner: str,
    *,
    amount: int,
    min_out: int = 1,
    limit: int = 200_000,
    price: int = 0,
    tip: int = 0,
    dex: str = "raydium",
    key: str | None = None,
) -> SignedTransaction:
    """A SOL → USDT swap signed by `owner`'s wallet against the current blockhash (an
    order's when `key` is one of its idempotency keys)."""
    slot = market.clock.current_slot()
    key = key or f"landing-test:{next(keys)}"
    budget = ComputeBudget(limit, price, tip)
    signature, raw = build_swap(
        signer=await market.wallets.keypair(owner),
        idempotency_key=key,
        token_in="SOL",
        token_out="USDT",
        legs=[SwapLeg(dex, amount, min_out)],
        slot=slot,
        budget=budget,
    )
    return SignedTransaction(signature, raw, key, slot, budget)


async def balances(market: Market, owner: str) -> dict[str, int]:
    return {b.token: b.total for b in (await market.wallets.view(owner)).balances}


async def test_a_transaction_that_never_lands_expires_right_after_its_last_valid_block_height(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    clock = TurnedClock()
    market = chain_market(settings, sessions, clock)
    dice = Dice(clock, lands=lambda slot: False)
    market.sim.chain._rng = dice
    tx = await signed(market, "expiring", amount=SOL)
    before = await balances(market, "expiring")

    with pytest.raises(MarketError) as expired:
        await market.chain.confirm(tx)

    assert expired.value.code is MarketErrorCode.TRANSACTION_EXPIRED
    assert (expired.value.stage, expired.value.fee_lamports) == (FailureStage.LANDING, 0)
    # It had its chance in every slot up to and including its last valid one, and no more.
    assert dice.rolled == list(range(tx.recent_blockhash_slot + 1, tx.last_valid_slot + 1))
    assert clock.slot == tx.last_valid_slot + 1
    assert await balances(market, "expiring") == before  # it paid nothing


async def test_a_transaction_may_still_land_in_its_last_valid_slot(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    clock = TurnedClock()
    market = chain_market(settings, sessions, clock)
    tx = await signed(market, "last-minute", amount=SOL)
    market.sim.chain._rng = Dice(clock, lands=lambda slot: slot == tx.last_valid_slot)

    landed = await market.chain.confirm(tx)

    assert landed.report is not None and landed.report.landed_slot == tx.last_valid_slot == landed.slot


async def test_fees_are_debited_to_the_lamport_also_when_a_landed_transaction_fails(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    clock = TurnedClock()
    market = chain_market(settings, sessions, clock, latency_ms=0)
    owner = "fee-payer"
    start = await balances(market, owner)
    pools_before = {p.pool_id: p for p in await market.pools.all(*PAIR)}

    # Its work (a swap, wrapping SOL) needs more than the 20 000 compute units it asked for.
    starved = await signed(market, owner, amount=SOL, limit=20_000, price=50_000, tip=10_000)
    with pytest.raises(MarketError) as failed:
        await market.chain.confirm(starved)
    paid_failed = fee(20_000, 50_000, 10_000).total_lamports
    assert paid_failed == 5_000 + 1_000 + 10_000
    assert failed.value.code is MarketErrorCode.COMPUTE_BUDGET_EXCEEDED
    assert (failed.value.stage, failed.value.fee_lamports) == (FailureStage.CHAIN, paid_failed)
    after_failure = await balances(market, owner)
    assert after_failure == {**start, "SOL": start["SOL"] - paid_failed}  # the fee, and nothing else
    assert {p.pool_id: p for p in await market.pools.all(*PAIR)} == pools_before
    with pytest.raises(MarketError) as again:  # confirming it again charges nothing more
        await market.chain.confirm(starved)
    assert again.value.fee_lamports == paid_failed
    assert await balances(market, owner) == after_failure

    good = await signed(market, owner, amount=2 * SOL, limit=120_000, price=12_345)
    landed = await market.chain.confirm(good)
    assert landed.report is not None
    paid = landed.report.fees.total_lamports
    assert paid == 5_000 + -(-120_000 * 12_345 // 10**6)  # the limit is paid for, not what was used
    assert landed.report.compute_units_consumed <= landed.report.compute_unit_limit == 120_000
    final = await balances(market, owner)
    assert final["SOL"] == after_failure["SOL"] - 2 * SOL - paid
    assert final["USDT"] == after_failure["USDT"] + landed.amount_out


async def test_a_landed_and_failed_transaction_pays_a_fee_beyond_its_orders_budget(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    clock = TurnedClock()
    market = chain_market(settings, sessions, clock, latency_ms=0)
    owner = "over-budget"
    # An order that holds nearly all its owner's SOL: a fee budget of 4 000 lamports,
    # and 3 000 lamports left available in the wallet.
    order = await insert_order(sessions, owner=owner, amount="0.001")
    async with sessions() as session, session.begin():
        await wallet_repository.forget(session, order.id)
        sol = await session.get(WalletBalance, (owner, "SOL"))
        assert sol is not None
        held_amount = int(sol.total - sol.reserved) - 4_000 - 3_000
        await wallet_repository.reserve(
            session, order.id, Hold(owner, "SOL", held_amount, fee_lamports=4_000)
        )
    before = await wallet_sol(sessions, owner)

    # Its work needs more than its 20 000 compute units: it lands, fails, and pays 16 000.
    starved = await signed(
        market, owner, amount=SOL, limit=20_000, price=50_000, tip=10_000, key=f"{order.id}:1"
    )
    with pytest.raises(MarketError) as failed:
        await market.chain.confirm(starved)

    paid = fee(20_000, 50_000, 10_000).total_lamports
    assert paid == 16_000
    assert failed.value.code is MarketErrorCode.COMPUTE_BUDGET_EXCEEDED
    assert (failed.value.stage, failed.value.fee_lamports) == (FailureStage.CHAIN, paid)
    recorded = await market.ledger.find_failed(starved.signature)
    assert recorded is not None and (recorded.order_id, recorded.fee_lamports) == (order.id, paid)
    # The fee, and nothing else, left the wallet: its budget first, then what was
    # available, then the rest (9 000) of what the order held to spend.
    total, reserved = await wallet_sol(sessions, owner)
    assert total == before[0] - paid
    assert reserved == before[1] - 4_000 - 9_000
    assert total - reserved == 0
    async with sessions() as session:
        held = await wallet_repository.reservation(session, order.id)
    assert held is not None and held.state is ReservationState.HELD
    assert (int(held.amount), int(held.fees_paid or 0)) == (held_amount - 9_000, paid)
    # Released, the order gives back exactly what it still holds.
    assert await Wallets(sessions, {}).release(order.id)
    assert await wallet_sol(sessions, owner) == (before[0] - paid, before[1] - 4_000 - held_amount)


async def test_a_fee_no_sol_of_the_order_or_wallet_can_pay_does_not_land(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    clock = TurnedClock()
    market = chain_market(settings, sessions, clock, latency_ms=0)
    owner = "fee-unpaid"
    # The order holds USDC and no fee budget; another order holds all but 3 000 lamports.
    order = await insert_order(sessions, owner=owner, amount="0.001")
    other = await insert_order(sessions, owner=owner, amount="0.001")
    async with sessions() as session, session.begin():
        await wallet_repository.forget(session, order.id)
        await wallet_repository.reserve(session, order.id, Hold(owner, "USDC", 10**6))
        await wallet_repository.forget(session, other.id)
        sol = await session.get(WalletBalance, (owner, "SOL"))
        assert sol is not None
        await wallet_repository.reserve(
            session, other.id, Hold(owner, "SOL", int(sol.total - sol.reserved) - 3_000)
        )
    before = await wallet_sol(sessions, owner)

    starved = await signed(
        market, owner, amount=SOL, limit=20_000, price=50_000, tip=10_000, key=f"{order.id}:1"
    )
    with pytest.raises(MarketError) as refused:
        await market.chain.confirm(starved)

    # Its fee payer could not pay 16 000 lamports: it never landed, and nothing moved.
    assert refused.value.code is MarketErrorCode.INSUFFICIENT_FUNDS
    assert (refused.value.stage, refused.value.fee_lamports) == (FailureStage.LANDING, 0)
    assert await market.ledger.find_failed(starved.signature) is None
    assert await wallet_sol(sessions, owner) == before


async def wallet_sol(sessions: async_sessionmaker[AsyncSession], owner: str) -> tuple[int, int]:
    async with sessions() as session:
        sol = await session.get(WalletBalance, (owner, "SOL"))
        assert sol is not None
        return int(sol.total), int(sol.reserved)


async def test_a_failing_simulation_is_not_sent_and_pays_nothing(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    clock = TurnedClock()
    market = chain_market(settings, sessions, clock, latency_ms=0)
    owner = "simulator"
    before = await balances(market, owner)
    greedy = await signed(market, owner, amount=SOL, min_out=10**15, price=10_000)  # no pool pays that

    with pytest.raises(MarketError) as refused:
        await market.chain.submit(greedy, simulate=True)

    assert refused.value.code is MarketErrorCode.SLIPPAGE_EXCEEDED
    assert (refused.value.stage, refused.value.fee_lamports) == (FailureStage.SIMULATION, 0)
    assert await balances(market, owner) == before
    assert await market.ledger.find_failed(greedy.signature) is None  # never sent, never landed
    fine = await signed(market, owner, amount=SOL, price=10_000)
    assert await market.chain.submit(fine, simulate=True) == fine.signature


async def test_searchers_sandwich_large_public_transactions_but_never_tipped_ones(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    clock = TurnedClock()
    market = chain_market(settings, sessions, clock, latency_ms=0, failure_rate=0.05)
    owner = "whale"
    await market.wallets.fund(owner, "SOL", 100_000 * SOL)
    amount = 300 * SOL

    async def land(tip: int) -> tuple[bool, int, int]:
        """One 300-SOL swap at 500 bps below its clean fill, from the same pool state."""
        pool = next(p for p in await market.pools.all(*PAIR) if p.dex == "raydium")
        clean = pool.quote_swap("SOL", amount).amount_out
        minimum = clean * 9_500 // 10_000
        landed = await market.chain.confirm(
            await signed(market, owner, amount=amount, min_out=minimum, price=1_000, tip=tip)
        )
        async with sessions() as session, session.begin():  # the pool as it was, for the next one
            await session.execute(
                text(
                    "UPDATE market_pools SET state = CAST(:state AS jsonb), updated_at = now() WHERE pool_id = :id"
                ),
                {"state": json.dumps(pool.to_state()), "id": pool.pool_id},
            )
        assert landed.report is not None
        return landed.report.sandwiched, landed.amount_out, minimum

    public = [await land(tip=0) for _ in range(24)]
    tipped = [await land(tip=50_000) for _ in range(24)]

    sandwiched = [fill for fill in public if fill[0]]
    assert len(sandwiched) > len(public) / 2  # odds 0.75 at this size and slack
    assert all(out >= minimum for _, out, minimum in public)  # never below the minimum
    clean_fill = max(out for hit, out, _ in public if not hit)
    assert all(out < clean_fill for _, out, _ in sandwiched)  # and always worse
    assert not any(hit for hit, _, _ in tipped)
