"""Reading, cancelling and re-driving orders: what the API routes, the WebSocket and the
operator CLI share. (Placing is orders/placement.py.)"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from accounts.keys import Principal
from core.domain import OrderStatus, OrderType
from core.errors import InvalidInput, OperatorRequired, ServiceUnavailable
from core.ids import is_order_id
from orders import repository
from orders.errors import InsufficientFunds, NothingToReplay, OrderNotCancellable, OrderNotFound
from orders.runs import MISSING, NoWorkflowTaskYet, OrderRuns
from orders.schemas import CancelAnswer, EventView, FailureView, OrderPage, OrderView, Timeline
from storage.models import Order, OrderEvent, OrderFailure, utcnow
from wallets import repository as wallet_repository
from wallets.errors import InsufficientFunds as StoreInsufficientFunds

STUCK_LIMIT = 500


@dataclass(frozen=True)
class StuckOrder:
    order_id: str
    status: OrderStatus
    type: OrderType
    age: timedelta
    workflow: str  # what Temporal says: RUNNING, COMPLETED, FAILED, …, or MISSING


@dataclass(frozen=True)
class OrderHistory:
    """Everything known of one order, for `order-engine orders show`."""

    order: Order
    events: list[OrderEvent]
    failures: list[OrderFailure]
    workflow: str
    history: str  # a line about its Temporal history


class OrderService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], runs: OrderRuns) -> None:
        self._sessions = sessions
        self.runs = runs

    async def _hold_again(self, order: Order) -> bool:
        """A failed order re-driven may spend again: reserve what it held before (True
        when reserved now, False when it still held it)."""
        async with self._sessions() as session, session.begin():
            await wallet_repository.lock(session, order.owner)
            try:
                return await wallet_repository.hold_again(session, order.id)
            except StoreInsufficientFunds as short:
                raise InsufficientFunds(
                    f"{order.owner} has {short.available} base units of {short.token} available; "
                    f"re-driving {order.id} needs {short.needed}",
                    field="order_id",
                ) from None

    async def get(self, principal: Principal, order_id: str) -> Order:
        """The order, if `principal` may see it: another owner's order is "not found",
        so that its existence is not revealed."""
        async with self._sessions() as session:
            order = await repository.get(session, order_id) if is_order_id(order_id) else None
        if order is None or not principal.may_see(order.owner):
            raise OrderNotFound(f"no order {order_id}")
        return order

    async def page(
        self,
        principal: Principal,
        *,
        owner: str | None,
        status: OrderStatus | None,
        order_type: OrderType | None,
        cursor: str | None,
        limit: int,
    ) -> OrderPage:
        """Newest first; an operator sees everyone's (`owner` narrows), others their own."""
        if cursor is not None and not is_order_id(cursor):
            raise InvalidInput("invalid_cursor", "cursor", "not a cursor returned by this endpoint")
        owner = principal.owner_scope(owner, "orders")
        async with self._sessions() as session:
            page = await repository.list_page(
                session, owner=owner, status=status, order_type=order_type, before_id=cursor, limit=limit + 1
            )
        items = page[:limit]
        return OrderPage(
            items=[OrderView.of(o) for o in items], next_cursor=items[-1].id if len(page) > limit else None
        )

    async def timeline(
        self, principal: Principal, order_id: str, after_seq: int = 0, limit: int = 500
    ) -> Timeline:
        """Lifecycle events (with `seq`) after `after_seq`, at most `limit`, and the
        failures recorded among them, in time order; `next_after_seq` continues."""
        await self.get(principal, order_id)
        async with self._sessions() as session:
            events = await repository.list_events(session, order_id, after_seq, limit + 1)
            more = len(events) > limit
            events = events[:limit]
            after = await repository.event_time(session, order_id, after_seq) if after_seq else None
            until = events[-1].at if more else None
            failures = await repository.list_failures(session, order_id, after, until)
        return Timeline(
            items=merge_timeline(events, failures), next_after_seq=events[-1].seq if more else None
        )

    async def events_after(self, order_id: str, after_seq: int) -> list[EventView]:
        async with self._sessions() as session:
            return [EventView.of(e) for e in await repository.list_events(session, order_id, after_seq)]

    async def cancel(self, principal: Principal, order_id: str) -> CancelAnswer:
        """Cancel an order that has not started executing (PENDING or WAITING)."""
        order = await self.get(principal, order_id)
        if order.status.is_terminal:
            raise OrderNotCancellable(f"{order_id} is already {order.status}")
        try:
            accepted = await self.runs.cancel(order_id)
        except WorkflowUpdateFailedError as error:
            raise OrderNotCancellable(f"{order_id} could not be cancelled: {error}") from error
        except WorkflowUpdateRPCTimeoutOrCancelledError as error:
            raise ServiceUnavailable("no worker answered the cancel request in time; retry") from error
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:  # the workflow has just finished
                raise OrderNotCancellable(f"{order_id} has already finished") from error
            raise ServiceUnavailable(
                f"the workflow engine refused the cancel for now ({error}); retry"
            ) from error
        if not accepted:
            raise OrderNotCancellable(f"{order_id} is already executing")
        return CancelAnswer(order_id=order_id, status=order.status)

    async def cancel_waiting(self, principal: Principal, owner: str) -> tuple[list[str], list[str]]:
        """Cancel every order of `owner` that has not started executing (PENDING or
        WAITING): a revoked key's, at an operator's word. Returns the ids cancelled and
        those that had started executing (or ended) meanwhile."""
        if not principal.may_see(owner):
            raise OperatorRequired("only an operator key may cancel another owner's orders")
        cancelled: list[str] = []
        refused: list[str] = []
        for status in (OrderStatus.WAITING, OrderStatus.PENDING):
            cursor: str | None = None
            while True:
                async with self._sessions() as session:
                    page = await repository.list_page(
                        session, owner=owner, status=status, order_type=None, before_id=cursor, limit=200
                    )
                for order in page:
                    try:
                        await self.cancel(principal, order.id)
                        cancelled.append(order.id)
                    except OrderNotCancellable:
                        refused.append(order.id)
                if len(page) < 200:
                    break
                cursor = page[-1].id
        return cancelled, refused

    async def stuck(self, older_than: timedelta) -> list[StuckOrder]:
        """Non-terminal orders (not WAITING) unchanged for longer than `older_than`, with
        what Temporal says of each workflow."""
        now = utcnow()
        async with self._sessions() as session:
            orders = await repository.unchanged_since(session, now - older_than, STUCK_LIMIT)
        return [
            StuckOrder(o.id, o.status, o.type, now - o.updated_at, await self.runs.state(o.id))
            for o in orders
        ]

    async def replay(self, principal: Principal, order_id: str) -> str:
        """Re-drive a stuck or failed order without executing it twice on chain (the
        chain refuses a second execution of an order). Returns what was done."""
        order = await self.get(principal, order_id)
        if order.status in (OrderStatus.CONFIRMED, OrderStatus.CANCELLED, OrderStatus.EXPIRED):
            raise NothingToReplay(f"{order_id} is {order.status}: there is nothing to re-drive")
        state = await self.runs.state(order_id)
        if state == MISSING:
            await self.runs.start(order)
            return "started its missing workflow"
        if state == "RUNNING":
            try:
                await self.runs.reset_to_last_workflow_task(order_id)
            except NoWorkflowTaskYet:
                raise NothingToReplay(
                    f"{order_id}'s workflow has not run its first step yet; a worker will start it"
                ) from None
            return "reset its workflow to the last completed workflow task"
        if order.status is not OrderStatus.FAILED and state == "COMPLETED":
            raise NothingToReplay(f"{order_id}'s workflow has completed; the order is {order.status}")
        async with self._sessions() as session:
            replays = await repository.count_replays(session, order_id)
        held_now = await self._hold_again(order)
        try:
            await self.runs.start(order, replay=replays + 1)
        except Exception as error:
            if await self._new_run_started(order_id):
                return "started a new run of its workflow"
            # Nothing runs that could spend it: give back what was reserved for this run,
            # so the order stays as it was with its funds available. Should the start land
            # after all, that run finds the reservation released and cannot execute.
            if held_now:
                async with self._sessions() as session, session.begin():
                    await wallet_repository.release(session, order_id)
            raise ServiceUnavailable(
                f"the workflow engine did not start a new run of {order_id} ({error}); "
                "its funds are as they were, retry"
            ) from error
        return "started a new run of its workflow"

    async def _new_run_started(self, order_id: str) -> bool:
        """Whether a failed start reached Temporal all the same (a run is going)."""
        try:
            return await self.runs.state(order_id) == "RUNNING"
        except Exception:
            return False

    async def history(self, principal: Principal, order_id: str) -> OrderHistory:
        order = await self.get(principal, order_id)
        async with self._sessions() as session:
            events = await repository.list_events(session, order_id)
            failures = await repository.list_failures(session, order_id)
        state = await self.runs.state(order_id)
        summary = await self.runs.history_summary(order_id) if state != MISSING else "no workflow"
        return OrderHistory(order, events, failures, state, summary)


def merge_timeline(events: list[OrderEvent], failures: list[OrderFailure]) -> list[EventView | FailureView]:
    """Events and failures in time order; a failure sorts before the retry event it
    caused (same instant or earlier)."""
    keyed: list[tuple[datetime, int, int, EventView | FailureView]] = [
        (f.created_at, 0, f.id or 0, FailureView.of(f)) for f in failures
    ]
    keyed += [(e.at, 1, e.seq, EventView.of(e)) for e in events]
    return [item for *_, item in sorted(keyed, key=lambda item: item[:3])]
