"""Every branch of the order state machine, on the time-skipping server with the
activities' world scripted (tests/workflows/harness.py): what the workflow records, in
what order, and how it ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from temporalio import activity
from temporalio.exceptions import TimeoutError, TimeoutType
from temporalio.testing import WorkflowEnvironment

from contracts.landing import LandingRequest
from contracts.orders import ConfirmRequest, ConfirmResult, Trigger, TriggerReason
from core.domain import OrderStatus, OrderType
from market.errors import MarketErrorCode
from market.ledger import Landed
from market.pools import ConstantProductPool, raydium_pool
from tests.workflows.harness import SOL, USDC, ScriptedChain, market_order, order_world, time_skipping
from workflows.order import OrderWorkflow

EXECUTED = [OrderStatus.ROUTING, OrderStatus.BUILDING, OrderStatus.SUBMITTED, OrderStatus.CONFIRMED]


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with time_skipping() as env:
        yield env


async def test_a_market_order_is_quoted_routed_submitted_and_confirmed(env: WorkflowEnvironment) -> None:
    async with order_world(env) as world:
        outcome = await (await world.start(market_order("1"))).result()
    assert outcome.status is OrderStatus.CONFIRMED and outcome.tx_hash == "sig1"
    assert world.records.statuses == EXECUTED
    building = world.records.data(OrderStatus.BUILDING)
    assert {q["dex"] for q in building["quotes"]} == {"raydium", "meteora"}
    assert building["selected_dex"] == "meteora"  # the cheaper venue for a small order
    assert world.records.data(OrderStatus.CONFIRMED)["tx_hash"] == "sig1"
    assert len(world.chain.executed) == 1 and world.admission.admitted == 1


async def test_slippage_at_landing_starts_the_next_attempt_with_fresh_quotes(
    env: WorkflowEnvironment,
) -> None:
    chain = ScriptedChain(confirm_failures=[MarketErrorCode.SLIPPAGE_EXCEEDED])
    async with order_world(env, chain) as world:
        outcome = await (await world.start(market_order("1"))).result()
    assert outcome.status is OrderStatus.CONFIRMED
    assert world.records.statuses == [*EXECUTED[:3], *EXECUTED]
    assert world.records.data(OrderStatus.ROUTING) == {"attempt": 2}
    assert world.records.data(OrderStatus.CONFIRMED)["tx_hash"] == "sig2"  # signed anew
    assert [f["code"] for f in world.records.failures] == ["SLIPPAGE_EXCEEDED"]


async def test_a_transaction_that_expired_is_signed_anew_and_the_next_bids_more(
    env: WorkflowEnvironment,
) -> None:
    # Expired (not landed by its last valid block height), then slipped on chain: only
    # the expiry raises the next attempt's fee, and every attempt is simulated first.
    chain = ScriptedChain(
        confirm_failures=[MarketErrorCode.TRANSACTION_EXPIRED, MarketErrorCode.SLIPPAGE_EXCEEDED]
    )
    async with order_world(env, chain) as world:
        outcome = await (await world.start(market_order("1", landing=LandingRequest()))).result()
    assert outcome.status is OrderStatus.CONFIRMED and outcome.tx_hash == "sig3"
    assert chain.escalations == [0, 1, 1]
    assert chain.simulated == [True, True, True]
    assert [f["code"] for f in world.records.failures] == ["TRANSACTION_EXPIRED", "SLIPPAGE_EXCEEDED"]
    assert [e["attempt"] for e in world.records.all_data(OrderStatus.ROUTING)] == [1, 2, 3]


async def test_a_submit_failing_every_time_fails_the_order_after_three_attempts(
    env: WorkflowEnvironment,
) -> None:
    chain = ScriptedChain(submit_failures=[MarketErrorCode.ACCOUNT_IN_USE] * 3)
    async with order_world(env, chain) as world:
        outcome = await (await world.start(market_order("1"))).result()
    assert outcome.status is OrderStatus.FAILED
    assert outcome.failure_reason is not None and "ACCOUNT_IN_USE" in outcome.failure_reason
    assert world.records.statuses == [OrderStatus.ROUTING, OrderStatus.BUILDING, OrderStatus.FAILED]
    assert [(r.attempt, r.backoff_ms) for r in world.records.retries] == [(1, 500), (2, 1000)]
    assert [f["attempt"] for f in world.records.failures] == [1, 2, 3]
    assert not world.chain.executed


async def test_a_transaction_that_landed_after_all_is_confirmed_not_failed(env: WorkflowEnvironment) -> None:
    # The first run's transaction landed, but its worker was cut off before it could say
    # so; every later submit fails. Before recording FAILED, the workflow looks.
    chain = ScriptedChain(submit_failures=[MarketErrorCode.ACCOUNT_IN_USE] * 3)
    order = market_order("1")
    chain.executed[f"{order.order_id}:swap"] = Landed("sig-lost-run", SOL, 150 * USDC, 7, ())
    async with order_world(env, chain) as world:
        outcome = await (await world.start(order)).result()
    assert outcome.status is OrderStatus.CONFIRMED and outcome.tx_hash == "sig-lost-run"
    assert world.records.statuses == [OrderStatus.ROUTING, OrderStatus.BUILDING, OrderStatus.CONFIRMED]
    assert world.records.data(OrderStatus.CONFIRMED)["amount_out"] == "150"


async def test_a_failed_order_closes_its_reservation_so_nothing_lands_later(env: WorkflowEnvironment) -> None:
    chain = ScriptedChain(submit_failures=[MarketErrorCode.ACCOUNT_IN_USE] * 3)
    order = market_order("1")
    async with order_world(env, chain) as world:
        outcome = await (await world.start(order)).result()
    assert outcome.status is OrderStatus.FAILED
    assert f"{order.order_id}:swap" in world.chain.closed


async def test_an_order_too_small_for_any_route_fails_without_trading(env: WorkflowEnvironment) -> None:
    async with order_world(env) as world:
        # One lamport buys less than a micro-USDC on every pool.
        outcome = await (await world.start(market_order("0.000000001"))).result()
    assert outcome.status is OrderStatus.FAILED
    assert outcome.failure_reason is not None and "NOTHING_TO_RECEIVE" in outcome.failure_reason
    assert world.chain.builds == 0


async def test_slippage_on_every_attempt_fails_after_the_third(env: WorkflowEnvironment) -> None:
    chain = ScriptedChain(confirm_failures=[MarketErrorCode.SLIPPAGE_EXCEEDED] * 3)
    async with order_world(env, chain) as world:
        outcome = await (await world.start(market_order("1"))).result()
    assert outcome.status is OrderStatus.FAILED
    assert world.records.statuses.count(OrderStatus.ROUTING) == 3
    assert world.records.statuses[-1] is OrderStatus.FAILED


async def test_an_error_no_retry_can_fix_fails_the_order_at_once(env: WorkflowEnvironment) -> None:
    chain = ScriptedChain(build_failures=[MarketErrorCode.INSUFFICIENT_FUNDS])
    async with order_world(env, chain) as world:
        outcome = await (await world.start(market_order("1"))).result()
    assert outcome.status is OrderStatus.FAILED
    assert world.records.statuses == [OrderStatus.ROUTING, OrderStatus.BUILDING, OrderStatus.FAILED]
    assert world.chain.builds == 1 and not world.records.retries


async def test_a_step_whose_every_try_timed_out_runs_again(env: WorkflowEnvironment) -> None:
    # As when workers died under it: a crash is not the order's failure.
    tries = 0

    @activity.defn(name="confirm_transaction")
    async def confirm_timing_out(request: ConfirmRequest) -> ConfirmResult:
        nonlocal tries
        tries += 1
        if tries <= 3:  # every try of the first run
            raise TimeoutError("worker lost", type=TimeoutType.START_TO_CLOSE, last_heartbeat_details=[])
        return ConfirmResult(request.tx.tx_hash, SOL, 150 * USDC, slot=2)

    async with order_world(env, replacing=[confirm_timing_out]) as world:
        outcome = await (await world.start(market_order("1"))).result()
    assert outcome.status is OrderStatus.CONFIRMED
    assert tries == 4
    assert world.records.statuses == EXECUTED


async def test_a_cancel_before_admission_ends_the_order_cancelled(env: WorkflowEnvironment) -> None:
    async with order_world(env) as world:
        world.admission.gate = asyncio.Event()
        handle = await world.start(market_order("1"))
        await world.admission.waiting.wait()
        assert await handle.execute_update(OrderWorkflow.cancel) is True
        world.admission.gate.set()
        outcome = await handle.result()
    assert outcome.status is OrderStatus.CANCELLED
    assert world.records.statuses == [OrderStatus.CANCELLED]
    assert world.chain.builds == 0


async def test_a_cancel_racing_execution_is_refused_and_the_order_completes(env: WorkflowEnvironment) -> None:
    async with order_world(env, ScriptedChain(build_gate=asyncio.Event())) as world:
        handle = await world.start(market_order("1"))
        await world.chain.building.wait()
        accepted = await handle.execute_update(OrderWorkflow.cancel)
        assert world.chain.build_gate is not None
        world.chain.build_gate.set()
        outcome = await handle.result()
    assert accepted is False
    assert outcome.status is OrderStatus.CONFIRMED


async def test_a_limit_order_waits_and_expires_when_its_timer_fires(env: WorkflowEnvironment) -> None:
    async with order_world(env) as world:
        now = await world.now()
        order = market_order("1", order_type=OrderType.LIMIT, limit_price="1000", expires_at=now + 24 * 3600)
        outcome = await (await world.start(order)).result()
        elapsed = await world.now() - now
    assert outcome.status is OrderStatus.EXPIRED
    assert world.records.statuses == [OrderStatus.WAITING, OrderStatus.EXPIRED]
    assert world.records.data(OrderStatus.WAITING)["waiting_for"] == {
        "limit_price": "1000",
        "pair": "SOL/USDC",
    }
    assert elapsed >= 24 * 3600  # a whole day of waiting skipped


async def test_a_limit_order_whose_route_slipped_below_its_limit_waits_again(
    env: WorkflowEnvironment,
) -> None:
    async with order_world(env) as world:
        now = await world.now()
        # 1 SOL routes to ≈ 149.8 USDC on the genesis pools: below a limit of 155.
        order = market_order("1", order_type=OrderType.LIMIT, limit_price="155", expires_at=now + 3600)
        handle = await world.start(order)
        await _until(lambda: world.records.statuses == [OrderStatus.WAITING])
        await handle.signal(OrderWorkflow.trigger, Trigger(TriggerReason.LIMIT_REACHED))
        await _until(lambda: world.records.statuses.count(OrderStatus.WAITING) == 2)
        assert world.chain.builds == 0  # never built below the limit
        # The price rises above the limit; the watcher signals again.
        world.pools.pools = [_sol_usdc_at("160")]
        await handle.signal(OrderWorkflow.trigger, Trigger(TriggerReason.LIMIT_REACHED))
        outcome = await handle.result()
    assert outcome.status is OrderStatus.CONFIRMED
    assert world.records.statuses == [
        OrderStatus.WAITING,
        OrderStatus.ROUTING,
        OrderStatus.WAITING,
        *EXECUTED,
    ]
    minimum = int(world.records.data(OrderStatus.BUILDING)["min_amount_out"].split(".")[0])
    assert minimum >= 155  # never fills below the limit


async def test_a_cancelled_waiting_order_never_executes(env: WorkflowEnvironment) -> None:
    async with order_world(env) as world:
        order = market_order(
            "1", order_type=OrderType.LIMIT, limit_price="1000", expires_at=await world.now() + 3600
        )
        handle = await world.start(order)
        await _until(lambda: world.records.statuses == [OrderStatus.WAITING])
        assert await handle.execute_update(OrderWorkflow.cancel) is True
        outcome = await handle.result()
    assert outcome.status is OrderStatus.CANCELLED
    assert world.records.statuses == [OrderStatus.WAITING, OrderStatus.CANCELLED]


async def test_a_sniper_learns_its_token_from_the_trigger_and_buys(env: WorkflowEnvironment) -> None:
    async with order_world(env) as world:
        order = market_order(
            "1",
            order_type=OrderType.SNIPER,
            token_out="USDC",
            decimals_out=None,
            expires_at=await world.now() + 3600,
        )
        handle = await world.start(order)
        await _until(lambda: world.records.statuses == [OrderStatus.WAITING])
        assert world.records.data(OrderStatus.WAITING)["waiting_for"] == {
            "pool_open": "USDC",
            "pair": "SOL/USDC",
        }
        await handle.signal(OrderWorkflow.trigger, Trigger(TriggerReason.POOL_OPEN, decimals_out=6))
        outcome = await handle.result()
    assert outcome.status is OrderStatus.CONFIRMED


async def test_an_operators_replay_reopens_the_order_and_runs_it_again(env: WorkflowEnvironment) -> None:
    async with order_world(env) as world:
        outcome = await (await world.start(market_order("1", replay=1))).result()
    assert outcome.status is OrderStatus.CONFIRMED
    assert world.records.statuses == [OrderStatus.PENDING, *EXECUTED]
    assert world.records.data(OrderStatus.PENDING) == {"replay": {"run": 1, "by": "operator"}}
    assert all(t.event_key.endswith("#replay1") for t in world.records.transitions)


def _sol_usdc_at(price: str) -> ConstantProductPool:
    return raydium_pool("SOL", "USDC", "50000", price)


async def _until(condition: object, timeout: float = 10) -> None:
    """Until `condition()` holds: the workflow runs on the test server, in real time."""
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)
