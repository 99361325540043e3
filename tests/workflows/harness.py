"""The order workflow on Temporal's time-skipping test server, with its activities'
world replaced: the venues quote in-memory genesis pools, the chain does what each test
scripts, and records are kept in a list. The activities themselves (quotes, routing,
execution, failure handling) are the real ones, so every branch of the state machine
runs as in production, in milliseconds, with timers that skip ahead."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import random
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.execution import ExecutionActivities
from activities.quotes import QuoteActivities
from activities.records import OrderRecords
from contracts.landing import LandingRequest
from contracts.orders import OrderInput, RetryScheduled, TransitionRequest
from contracts.policies import WORKFLOW_TASK_TIMEOUT
from core.domain import OrderStatus, OrderType
from core.ids import new_order_id
from core.temporal import ADMISSION_TASK_QUEUE, SEARCH_ATTRIBUTE_KEYS
from market.chain import SignedTransaction
from market.clock import MarketClock
from market.errors import MarketError, MarketErrorCode
from market.ledger import Landed, LandedLeg
from market.pools import Pool, genesis_pools
from market.transactions import SwapLeg
from market.venues import SimulationConfig, Venues
from orders.transitions import describe
from workflows.order import OrderWorkflow

TEST_SERVER = Path(sys.executable).parent / "temporal-test-server"
SOL, USDC = 10**9, 10**6


@contextlib.asynccontextmanager
async def time_skipping() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(TEST_SERVER)
    ) as env:
        # The test server cannot list search attributes, only add them.
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={
                    key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in SEARCH_ATTRIBUTE_KEYS
                },
            )
        )
        yield env


class MemoryPools:
    """The genesis pools, in memory; a test may replace them (a price move)."""

    def __init__(self) -> None:
        self.pools: list[Pool] = genesis_pools()

    async def all(self, token_a: str | None = None, token_b: str | None = None) -> list[Pool]:
        if token_a is None or token_b is None:
            return list(self.pools)
        return [p for p in self.pools if {p.base, p.quote} == {token_a, token_b}]


@dataclass
class ScriptedChain:
    """The chain, as each test scripts it: failures to raise in turn, gates to hold a
    step until the test lets it go, and one execution per idempotency key."""

    build_failures: list[MarketErrorCode | BaseException] = field(default_factory=list)
    submit_failures: list[MarketErrorCode | BaseException] = field(default_factory=list)
    confirm_failures: list[MarketErrorCode | BaseException] = field(default_factory=list)
    build_gate: asyncio.Event | None = None
    building: asyncio.Event = field(default_factory=asyncio.Event)
    builds: int = 0
    escalations: list[int] = field(default_factory=list)  # each build's, in turn
    simulated: list[bool] = field(default_factory=list)  # each submit's `simulate`, in turn
    executed: dict[str, Landed] = field(default_factory=dict)
    closed: set[str] = field(default_factory=set)
    _legs: dict[str, list[SwapLeg]] = field(default_factory=dict)

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
        self.builds += 1
        self.escalations.append(escalation)
        self.building.set()
        if self.build_gate is not None:
            await self.build_gate.wait()
        _fail_next(self.build_failures)
        signature = f"sig{self.builds}"
        self._legs[signature] = legs
        return SignedTransaction(signature, b"signed", idempotency_key, recent_blockhash_slot=1)

    async def submit(self, tx: SignedTransaction, simulate: bool = False) -> str:
        self.simulated.append(simulate)
        _fail_next(self.submit_failures)
        return tx.signature

    async def confirm(self, tx: SignedTransaction) -> Landed:
        _fail_next(self.confirm_failures)
        if tx.idempotency_key not in self.executed:
            if tx.idempotency_key in self.closed:
                raise MarketError(MarketErrorCode.ORDER_CLOSED, "the order's reservation was released")
            legs = self._legs[tx.signature]
            filled = tuple(
                LandedLeg(leg.dex, leg.amount_in, leg.min_amount_out + 1, leg.min_amount_out) for leg in legs
            )
            amount_in = sum(leg.amount_in for leg in filled)
            amount_out = sum(leg.amount_out for leg in filled)
            self.executed[tx.idempotency_key] = Landed(tx.signature, amount_in, amount_out, 2, filled)
        return self.executed[tx.idempotency_key]

    async def close(self, order_id: str, idempotency_key: str) -> Landed | None:
        self.closed.add(idempotency_key)
        return self.executed.get(idempotency_key)


def _fail_next(failures: list[MarketErrorCode | BaseException]) -> None:
    if failures:
        failure = failures.pop(0)
        if isinstance(failure, BaseException):
            raise failure
        raise MarketError(failure, f"scripted {failure}")


class RecordedSteps(OrderRecords):
    """Records kept in memory, idempotent per event key as PostgreSQL keeps them."""

    def __init__(self) -> None:
        self.transitions: list[TransitionRequest] = []
        self.failures: list[dict[str, Any]] = []

    async def transition(self, request: TransitionRequest) -> int:
        keys = [t.event_key for t in self.transitions]
        if request.event_key not in keys:
            self.transitions.append(request)
            keys.append(request.event_key)
        return keys.index(request.event_key) + 2  # seq 1 is the order's creation

    async def attempt_failed(self, *, backoff_ms: int | None, **failure: Any) -> None:
        self.failures.append(failure)
        if backoff_ms is not None:
            info = activity.info()
            await self.transition(
                TransitionRequest.of(
                    failure["order_id"],
                    f"retry:{info.workflow_run_id}:{info.activity_id}:{info.attempt}",
                    None,
                    RetryScheduled(
                        failure["activity_name"], failure["attempt"], failure["reason"], backoff_ms
                    ),
                )
            )

    @property
    def statuses(self) -> list[OrderStatus]:
        return [t.status for t in self.transitions if t.status is not None]

    def data(self, status: OrderStatus) -> dict[str, Any]:
        """The event data of the last step recorded with `status`."""
        return describe([t for t in self.transitions if t.status == status][-1]).data

    def all_data(self, status: OrderStatus) -> list[dict[str, Any]]:
        """The event data of every step recorded with `status`, in turn."""
        return [describe(t).data for t in self.transitions if t.status == status]

    @property
    def retries(self) -> list[RetryScheduled]:
        return [t.retry for t in self.transitions if t.retry is not None]


@dataclass
class Admission:
    """The rate-limited admission step; a test may hold orders there."""

    gate: asyncio.Event | None = None
    waiting: asyncio.Event = field(default_factory=asyncio.Event)
    admitted: int = 0

    @activity.defn(name="admit_order")
    async def admit_order(self, request: Any) -> None:
        self.waiting.set()
        if self.gate is not None:
            await self.gate.wait()
        self.admitted += 1


@dataclass
class OrderWorld:
    """One test's world: the environment, its fakes, and a worker running them."""

    env: WorkflowEnvironment
    task_queue: str
    pools: MemoryPools
    chain: ScriptedChain
    records: RecordedSteps
    admission: Admission
    started: list[str] = field(default_factory=list)

    @property
    def client(self) -> Client:
        return self.env.client

    async def start(self, order: OrderInput) -> WorkflowHandle[Any, Any]:
        self.started.append(order.order_id)
        return await self.client.start_workflow(
            OrderWorkflow.run,
            order,
            id=order.order_id,
            task_queue=self.task_queue,
            # As orders/runs.py starts them: a long local activity heartbeats the workflow
            # task this often, which is also when an update sent meanwhile is answered.
            task_timeout=WORKFLOW_TASK_TIMEOUT,
        )

    async def now(self) -> float:
        return (await self.env.get_current_time()).timestamp()


@contextlib.asynccontextmanager
async def order_world(
    env: WorkflowEnvironment, chain: ScriptedChain | None = None, replacing: Sequence[Any] = ()
) -> AsyncIterator[OrderWorld]:
    """The world's worker; `replacing` are activities that stand in for the real ones of
    their names."""
    world = OrderWorld(
        env, f"orders-{uuid.uuid4()}", MemoryPools(), chain or ScriptedChain(), RecordedSteps(), Admission()
    )
    quotes = QuoteActivities(
        Venues(world.pools, MarketClock(), SimulationConfig(0, 0, 0), random.Random(1)), world.records
    )
    execution = ExecutionActivities(world.chain, world.records)
    activities: dict[str, Callable[..., Any]] = {
        activity_name(fn): fn
        for fn in (
            quotes.quote,
            quotes.route_order,
            quotes.plan_route,
            world.records.record_transition,
            execution.build_transaction,
            execution.submit_transaction,
            execution.confirm_transaction,
            execution.close_unexecuted,
            *replacing,
        )
    }
    async with (
        Worker(
            env.client,
            task_queue=world.task_queue,
            workflows=[OrderWorkflow],
            activities=list(activities.values()),
        ),
        Worker(env.client, task_queue=ADMISSION_TASK_QUEUE, activities=[world.admission.admit_order]),
    ):
        yield world
        if RECORD_AS.get() and os.environ.get(RECORD_ENV):
            await save_histories(world, RECORD_AS.get())


# `ORDER_ENGINE_RECORD_HISTORIES=1 pytest tests/workflows` saves each test's workflow
# history for the replay test (tests/workflows/test_replay.py), as paths/<test>.json.
RECORD_ENV = "ORDER_ENGINE_RECORD_HISTORIES"
RECORD_AS: contextvars.ContextVar[str] = contextvars.ContextVar("record_as", default="")
PATHS = Path(__file__).parents[1] / "histories" / "paths"


async def save_histories(world: OrderWorld, name: str) -> None:
    PATHS.mkdir(exist_ok=True)
    for n, order_id in enumerate(world.started):
        history = await world.client.get_workflow_handle(order_id).fetch_history()
        suffix = f"_{n + 1}" if len(world.started) > 1 else ""
        (PATHS / f"{name}{suffix}.json").write_text(history.to_json())


def activity_name(fn: Any) -> str:
    defn = activity._Definition.must_from_callable(fn)
    assert defn.name is not None
    return defn.name


def market_order(amount_sol: str = "1", slippage_bps: int = 50, **fields: Any) -> OrderInput:
    values: dict[str, Any] = {
        "order_id": new_order_id(),
        "order_type": OrderType.MARKET,
        "token_in": "SOL",
        "token_out": "USDC",
        "amount_in": int(Decimal(amount_sol) * SOL),
        "slippage_bps": slippage_bps,
        "decimals_in": 9,
        "decimals_out": 6,
    }
    values.update(fields)
    return OrderInput(**values)
