"""The strategies domain: create (validated, capped per owner), read, page, pause,
resume, cancel, and record what the strategy workflows report. Routes, the CLI and the
strategy activities all call this."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from accounts.keys import Principal
from accounts.limits import KeyRateLimiter
from contracts.orders import Ended, TransitionRequest
from contracts.strategies import StrategyEnded, StrategyInput, StrategyRecord, dca_schedule_id
from core.decimals import positive_decimal
from core.domain import OrderStatus, OrderType, StrategyAction, StrategyStatus, StrategyType
from core.durations import parse_duration
from core.errors import DomainError, InvalidInput, OperatorRequired, ServiceUnavailable
from core.formatting import format_price
from core.ids import is_order_id, is_strategy_id, new_strategy_id
from core.settings import Settings
from orders.errors import IdempotencyKeyReused, IdempotencyRequestInFlight
from orders.events import OrderEvents
from orders.placement import IDEMPOTENCY_TTL, IN_FLIGHT_FOR, request_hash
from orders.quotes import QuoteService
from orders.recording import apply_transition
from orders.runs import MISSING, OrderRuns
from orders.schemas import OrderCreate, OrderPage, OrderView
from orders.validation import ValidOrder
from storage.models import Strategy, StrategyEvent, utcnow
from storage.redis import RedisBreaker
from strategies import repository
from strategies.errors import StrategyFinished, StrategyNotFound, StrategyStateConflict, TooManyStrategies
from strategies.events import StrategyEventsPublisher
from strategies.runs import StrategyRuns
from strategies.schemas import (
    CHILD_ORDERS_SHOWN,
    MAX_SLICES,
    StrategyAccepted,
    StrategyActionAnswer,
    StrategyCreate,
    StrategyEvents,
    StrategyEventView,
    StrategyPage,
    StrategyView,
    counts_of,
    progress_of,
)
from strategies.transitions import describe as describe_strategy_step

log = logging.getLogger(__name__)

BRACKET_DEFAULT_EXPIRY_S = 604_800  # a week, the longest any order waits
MAX_DCA_ORDERS = 10_000
# A strategy younger than this may still be waiting for its workflow's start (the request
# that stored it is on its way to Temporal): no workflow yet does not make it an orphan.
ORPHAN_AFTER = timedelta(seconds=15)
RECONCILE_BATCH = 100
# Why a strategy whose workflow closed without recording its end can place no more orders.
WORKFLOW_GONE = {
    WorkflowExecutionStatus.TERMINATED: "workflow terminated",
    WorkflowExecutionStatus.FAILED: "workflow failed",
    WorkflowExecutionStatus.TIMED_OUT: "workflow timed out",
    WorkflowExecutionStatus.CANCELED: "workflow cancelled",
    WorkflowExecutionStatus.COMPLETED: "workflow completed without recording its end",
}
NEVER_STARTED = "workflow never started"
# Which fields each type takes (beyond type, tokens and slippage).
FIELDS: dict[StrategyType, frozenset[str]] = {
    StrategyType.TWAP: frozenset({"amount", "slices", "interval_s", "limit_price"}),
    StrategyType.DCA: frozenset({"amount_per_order", "every", "orders"}),
    StrategyType.BRACKET: frozenset(
        {"amount", "take_profit_price", "stop_loss_price", "trailing_bps", "expires_in_s"}
    ),
}
COMMON = frozenset({"type", "token_in", "token_out", "slippage_bps"})


@dataclass(frozen=True)
class StrategyLimits:
    max_running_per_owner: int


class StrategyService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        runs: StrategyRuns,
        quotes: QuoteService,
        events: StrategyEventsPublisher,
        limits: StrategyLimits,
        rate: KeyRateLimiter,
        order_runs: OrderRuns,
        order_events: OrderEvents,
    ) -> None:
        self._sessions, self._runs, self._quotes = sessions, runs, quotes
        self._events, self._limits, self._rate = events, limits, rate
        self._order_runs, self._order_events = order_runs, order_events

    async def create(
        self, principal: Principal, body: StrategyCreate, idempotency_key: str | None = None
    ) -> Started:
        """Validate, store and start the strategy. With an Idempotency-Key, a repeat of
        an earlier request (same key and body, within 24 h) gets that strategy back,
        before any check: a retried strategy never starts twice."""
        body_hash = request_hash(body)
        if idempotency_key is not None:
            earlier = await self._earlier(principal.owner, idempotency_key, body_hash)
            if earlier is not None:
                return Started(earlier, replayed=True)
        await self._rate.take(principal)  # the key's placement rate: orders and strategies
        strategy_input = await self._validate(principal.owner, body)
        now = utcnow()
        params = body.model_dump(mode="json", exclude_none=True, exclude={"type"})
        if body.type is StrategyType.BRACKET:
            params["expires_in_s"] = strategy_input.expires_in_s
        strategy = Strategy(
            id=strategy_input.strategy_id,
            owner=principal.owner,
            type=body.type,
            status=StrategyStatus.RUNNING,
            params=params,
            expires_at=_expiry(now, strategy_input.expires_in_s),
            idempotency_key=idempotency_key,
            request_hash=body_hash,
            created_at=now,
            updated_at=now,
        )
        repeated: Strategy | None = None
        async with self._sessions() as session, session.begin():
            # An exact count across API processes, and one request per key at a time.
            await repository.lock_owner(session, principal.owner)
            if idempotency_key is not None:
                repeated = await self._holder_of(session, principal.owner, idempotency_key, now)
            if repeated is None:
                await self._insert(session, principal, strategy)
        if repeated is not None:  # a request with the key got here first, meanwhile
            accepted = await self._replay_of(repeated, body_hash, now)
            if accepted is None:
                raise IdempotencyRequestInFlight(
                    "the first request with this Idempotency-Key did not start its strategy; retry"
                )
            return Started(accepted, replayed=True)
        try:
            await self._runs.start(strategy_input, _summary(body))
        except Exception as error:
            log.warning("could not start strategy %s: %s", strategy.id, error)
            if not await self._runs.exists(strategy.id):
                # Undone: should the start still arrive, the workflow finds no row at its
                # first record and ends without placing anything.
                async with self._sessions() as session, session.begin():
                    await repository.delete_unstarted(session, strategy.id)
                raise ServiceUnavailable(
                    "the workflow engine is unreachable; nothing was stored, retry"
                ) from error
        return Started(_accepted(strategy), replayed=False)

    async def _insert(self, session: AsyncSession, principal: Principal, strategy: Strategy) -> None:
        """Store the strategy unless its owner runs as many as one may (the owner locked)."""
        running = await repository.count_running(session, principal.owner)
        if not principal.operator and running >= self._limits.max_running_per_owner:
            raise TooManyStrategies(
                f"{principal.owner} has {running} running strategies, the most an owner may have; "
                "wait for some to finish or cancel them"
            )
        repository.insert(session, strategy)

    async def _earlier(self, owner: str, idempotency_key: str, body_hash: str) -> StrategyAccepted | None:
        """The strategy an earlier request with this key started (None: there was none,
        it is older than 24 h, or it never started and is gone now)."""
        async with self._sessions() as session:
            existing = await repository.find_by_idempotency_key(session, owner, idempotency_key)
        if existing is None or existing.created_at < utcnow() - IDEMPOTENCY_TTL:
            return None
        return await self._replay_of(existing, body_hash, utcnow())

    async def _holder_of(
        self, session: AsyncSession, owner: str, idempotency_key: str, now: datetime
    ) -> Strategy | None:
        """In the owner's locked unit of work: the strategy holding the key, if it still
        does (a key older than 24 h is freed for this request)."""
        existing = await repository.find_by_idempotency_key(session, owner, idempotency_key)
        if existing is not None and existing.created_at < now - IDEMPOTENCY_TTL:
            await repository.release_idempotency_key(session, existing.id)
            return None
        return existing

    async def _replay_of(self, existing: Strategy, body_hash: str, now: datetime) -> StrategyAccepted | None:
        """The answer to a repeat of the request that stored `existing`; None when that
        request died before its workflow started (the row is removed: start afresh)."""
        if existing.request_hash != body_hash:
            raise IdempotencyKeyReused("this Idempotency-Key was used with a different body")
        # A started workflow records first: more than the `created` event says it ran.
        if existing.last_seq > 1 or await self._runs.exists(existing.id):
            return _accepted(existing)
        if existing.created_at > now - IN_FLIGHT_FOR:
            raise IdempotencyRequestInFlight(
                "the first request with this Idempotency-Key is still being processed; retry shortly"
            )
        async with self._sessions() as session, session.begin():
            if not await repository.delete_never_started(session, existing.id):
                return _accepted(existing)  # it recorded its start meanwhile
        return None

    async def get(self, principal: Principal, strategy_id: str) -> StrategyView:
        return (await self.snapshot(principal, strategy_id))[0]

    async def snapshot(self, principal: Principal, strategy_id: str) -> tuple[StrategyView, int]:
        """The strategy as it stands and the seq of its last event, from one read."""
        async with self._sessions() as session:
            strategy = await self._visible(session, principal, strategy_id)
            (view,) = await _views(session, [strategy])
        return view, strategy.last_seq

    async def orders(
        self, principal: Principal, strategy_id: str, *, cursor: str | None, limit: int
    ) -> OrderPage:
        """Every order the strategy placed, newest first, a page at a time (as GET /orders)."""
        if cursor is not None and not is_order_id(cursor):
            raise InvalidInput("invalid_cursor", "cursor", "not a cursor returned by this endpoint")
        async with self._sessions() as session:
            await self._visible(session, principal, strategy_id)
            page = await repository.children_page(session, strategy_id, cursor, limit + 1)
        items = page[:limit]
        return OrderPage(
            items=[OrderView.of(o) for o in items], next_cursor=items[-1].id if len(page) > limit else None
        )

    async def page(
        self,
        principal: Principal,
        *,
        owner: str | None,
        status: StrategyStatus | None,
        cursor: str | None,
        limit: int,
    ) -> StrategyPage:
        """Newest first; an operator sees everyone's (`owner` narrows), others their own."""
        if cursor is not None and not is_strategy_id(cursor):
            raise InvalidInput("invalid_cursor", "cursor", "not a cursor returned by this endpoint")
        owner = principal.owner_scope(owner, "strategies")
        async with self._sessions() as session:
            page = await repository.list_page(
                session, owner=owner, status=status, before_id=cursor, limit=limit + 1
            )
            items = page[:limit]
            views = await _views(session, items)
        return StrategyPage(items=views, next_cursor=items[-1].id if len(page) > limit else None)

    async def events(
        self, principal: Principal, strategy_id: str, after_seq: int = 0, limit: int = 500
    ) -> StrategyEvents:
        async with self._sessions() as session:
            await self._visible(session, principal, strategy_id)
            events = await repository.events_after(session, strategy_id, after_seq, limit + 1)
        items = [StrategyEventView.of(e) for e in events[:limit]]
        return StrategyEvents(items=items, next_after_seq=items[-1].seq if len(events) > limit else None)

    async def events_after(self, strategy_id: str, after_seq: int) -> list[StrategyEventView]:
        async with self._sessions() as session:
            return [
                StrategyEventView.of(e)
                for e in await repository.events_after(session, strategy_id, after_seq, 10_000)
            ]

    async def act(
        self, principal: Principal, strategy_id: str, action: StrategyAction
    ) -> StrategyActionAnswer:
        """pause, resume or cancel (202): the workflow decides and records the change."""
        async with self._sessions() as session:
            strategy = await self._visible(session, principal, strategy_id)
        if strategy.status.is_terminal:
            raise StrategyFinished(f"{strategy_id} ended {strategy.status}; nothing to {action}")
        try:
            accepted = await self._runs.update(strategy_id, action)
        except Exception as error:
            async with self._sessions() as session:
                now = await repository.get(session, strategy_id)
            if now is not None and now.status.is_terminal:  # it closed meanwhile
                raise StrategyFinished(f"{strategy_id} ended {now.status}; nothing to {action}") from error
            try:
                gone = await self.workflow_gone(strategy)
                if gone is not None:
                    return await self._act_on_orphan(strategy, action, gone)
            except DomainError:
                raise
            except Exception as unreachable:  # Temporal or PostgreSQL: the client retries
                log.warning("could not settle %s whose %s failed: %s", strategy_id, action, unreachable)
            log.warning("%s of %s did not get through: %s", action, strategy_id, error)
            raise ServiceUnavailable(f"could not {action} {strategy_id} now; retry") from error
        if not accepted:
            raise StrategyStateConflict(
                f"{strategy_id} cannot {action} now: it is {strategy.status}"
                + (
                    " or already cancelled"
                    if action is not StrategyAction.CANCEL
                    else ", its cancel was asked already"
                )
            )
        async with self._sessions() as session:
            now = await repository.get(session, strategy_id)
        return StrategyActionAnswer(
            strategy_id=strategy_id, action=action, status=now.status if now else strategy.status
        )

    async def _act_on_orphan(
        self, strategy: Strategy, action: StrategyAction, gone: str
    ) -> StrategyActionAnswer:
        """Nothing will ever answer: the strategy ends here (its Schedule with it),
        cancelled when that is what was asked, failed otherwise (409)."""
        ended = StrategyStatus.CANCELLED if action is StrategyAction.CANCEL else StrategyStatus.FAILED
        if not await self.end_orphan(strategy, ended, gone):  # a round or the reconciler did
            async with self._sessions() as session:
                now = await repository.get(session, strategy.id)
            raise StrategyFinished(f"{strategy.id} ended {now.status if now else ended}: its {gone}")
        if action is not StrategyAction.CANCEL:
            raise StrategyFinished(f"{strategy.id} ended {ended}: its {gone}; nothing to {action}")
        return StrategyActionAnswer(strategy_id=strategy.id, action=action, status=ended)

    async def record(self, record: StrategyRecord) -> None:
        """What a strategy workflow reports: stored once, then published."""
        change = describe_strategy_step(record)
        async with self._sessions() as session, session.begin():
            recorded = await repository.record(session, record.strategy_id, change)
            if recorded is None and await repository.get(session, record.strategy_id) is None:
                raise StrategyNotFound(f"no strategy {record.strategy_id}")
        if recorded is not None:
            await self._publish(recorded.event)

    async def _publish(self, event: StrategyEvent) -> None:
        try:
            await self._events.publish(StrategyEventView.of(event))
        except Exception as error:  # PostgreSQL has it: streams catch up from there
            log.warning("could not publish %s event %s: %s", event.strategy_id, event.event_key, error)

    async def workflow_gone(self, strategy: Strategy) -> str | None:
        """Why the strategy's workflow can no longer run it (terminated, failed, …), or
        None while it runs (or may still start)."""
        status = await self._runs.status(strategy.id)
        if status is None:
            return NEVER_STARTED if utcnow() - strategy.created_at > ORPHAN_AFTER else None
        if status is WorkflowExecutionStatus.RUNNING:
            return None
        return WORKFLOW_GONE.get(status, f"workflow {status.name.lower()}")

    async def end_orphan(self, strategy: Strategy, status: StrategyStatus, reason: str) -> bool:
        """End a strategy whose workflow is gone: its Schedule deleted (no round starts
        again), the row ended with the reason, which frees the owner's slot. False when
        it had ended already."""
        if strategy.type is StrategyType.DCA:
            await self._runs.delete_schedule(strategy.id)
        # Children first: once the row has ended no pass of the reconciler comes back to
        # it, so a leg left WAITING would hold its funds until it expires.
        await self._settle_children(strategy, reason)
        async with self._sessions() as session, session.begin():
            recorded = await repository.record(
                session,
                strategy.id,
                describe_strategy_step(StrategyRecord.of(strategy.id, StrategyEnded(status, reason))),
                while_running=True,
            )
        if recorded is None:
            return False
        log.warning("strategy %s ended %s: its %s", strategy.id, status, reason)
        await self._publish(recorded.event)
        return True

    async def _settle_children(self, strategy: Strategy, reason: str) -> None:
        """A bracket's legs wait for a signal only its workflow would send: cancelled,
        they give back what they reserve instead of holding it until they expire. A
        TWAP's or bracket's order placed but never started (the workflow ended between
        the two) is withdrawn. A DCA's orders are started by its rounds, which run on."""
        async with self._sessions() as session:
            children = await repository.open_children(session, strategy.id)
        unsettled: list[str] = []
        for order_id, status in children:
            try:
                if status is OrderStatus.WAITING:
                    await self._order_runs.cancel(order_id)
                elif (
                    strategy.type is not StrategyType.DCA
                    and await self._order_runs.state(order_id) == MISSING
                ):
                    await self.withdraw_child(order_id, f"its strategy's {reason} before it started")
            except Exception as error:
                log.warning("could not end %s of strategy %s: %s", order_id, strategy.id, error)
                # No workflow to ask: nothing of the strategy's to settle (the orders'
                # reconciler looks after an order without its workflow).
                if not (isinstance(error, RPCError) and error.status == RPCStatusCode.NOT_FOUND):
                    unsettled.append(order_id)
        if unsettled:  # the strategy stays open: the next try (or pass) settles these
            raise ServiceUnavailable(f"could not end {', '.join(unsettled)} of {strategy.id} now; retry")

    async def withdraw_child(self, order_id: str, reason: str) -> None:
        """A child order that will never be started: CANCELLED, and what it reserved goes
        back (once per order: its event key)."""
        request = TransitionRequest.of(order_id, "cancelled", OrderStatus.CANCELLED, Ended(reason))
        await apply_transition(self._sessions, self._order_events, request)

    async def reconcile(self, after_id: str = "") -> tuple[int, str]:
        """One batch of running strategies after `after_id` (by id): each whose workflow
        is gone ends FAILED with the reason, its Schedule deleted. Returns how many ended
        and where the next batch starts ("" once every strategy was seen)."""
        async with self._sessions() as session:
            batch = await repository.running_after(session, after_id, RECONCILE_BATCH)
        ended = 0
        for strategy in batch:
            try:
                gone = await self.workflow_gone(strategy)
                if gone is not None and await self.end_orphan(strategy, StrategyStatus.FAILED, gone):
                    ended += 1
            except Exception as error:  # Temporal unreachable: this one waits for the next pass
                log.warning("reconciler could not check strategy %s: %s", strategy.id, error)
        return ended, batch[-1].id if len(batch) == RECONCILE_BATCH else ""

    async def cancel_all(self, principal: Principal, owner: str) -> tuple[list[str], list[str]]:
        """Cancel every running or paused strategy of `owner` (a revoked key's, at an
        operator's word). Returns the ids cancelled and those whose workflow did not
        answer (retry); one that ended meanwhile is in neither."""
        if not principal.may_see(owner):
            raise OperatorRequired("only an operator key may cancel another owner's strategies")
        async with self._sessions() as session:
            running = await repository.running_of(session, owner)
        cancelled: list[str] = []
        unreachable: list[str] = []
        for strategy in running:
            try:
                cancelled.append((await self.act(principal, strategy.id, StrategyAction.CANCEL)).strategy_id)
            except (StrategyFinished, StrategyStateConflict):
                continue
            except ServiceUnavailable:
                unreachable.append(strategy.id)
        return cancelled, unreachable

    async def _visible(self, session: AsyncSession, principal: Principal, strategy_id: str) -> Strategy:
        strategy = await repository.get(session, strategy_id) if is_strategy_id(strategy_id) else None
        if strategy is None or not principal.may_see(strategy.owner):
            raise StrategyNotFound(f"no strategy {strategy_id}")
        return strategy

    async def _validate(self, owner: str, body: StrategyCreate) -> StrategyInput:
        sent = {name for name, value in body if value is not None} | {"slippage_bps"}
        extra = sorted(sent - FIELDS[body.type] - COMMON)
        if extra:
            raise InvalidInput(
                "unexpected_field", extra[0], f"a {body.type} strategy takes no {', '.join(extra)}"
            )
        strategy_id = new_strategy_id()
        common: dict[str, Any] = {
            "strategy_id": strategy_id,
            "type": body.type,
            "owner": owner,
            "token_in": body.token_in,
            "token_out": body.token_out,
            "slippage_bps": body.slippage_bps,
        }
        match body.type:
            case StrategyType.TWAP:
                return await self._twap(body, common)
            case StrategyType.DCA:
                return await self._dca(body, common)
            case StrategyType.BRACKET:
                return await self._bracket(body, common)

    async def _child(self, body: StrategyCreate, amount: str | None, field: str, **fields: Any) -> ValidOrder:
        """An order as the strategy would place it, validated as POST /orders would."""
        if amount is None:
            raise InvalidInput("missing_field", field, f"a {body.type} strategy needs {field}")
        try:
            order = OrderCreate(
                token_in=body.token_in,
                token_out=body.token_out,
                amount=amount,
                slippage_bps=body.slippage_bps,
                **fields,
            )
        except ValidationError as error:
            first = error.errors()[0]
            raise InvalidInput(f"invalid_{field}", field, str(first["msg"])) from error
        try:
            return await self._quotes.validate(order)
        except InvalidInput as error:
            if error.code == "invalid_amount":  # named as the strategy names it
                raise InvalidInput(f"invalid_{field}", field, error.detail) from error
            raise

    async def _twap(self, body: StrategyCreate, common: dict[str, Any]) -> StrategyInput:
        if body.slices is None or not 2 <= body.slices <= MAX_SLICES:
            raise InvalidInput("invalid_slices", "slices", f"slices must be 2–{MAX_SLICES}")
        if body.interval_s is None or not 1 <= body.interval_s <= 86_400:
            raise InvalidInput("invalid_interval", "interval_s", "interval_s must be 1–86400 seconds")
        limit = _price("limit_price", body.limit_price)
        valid = await self._child(body, body.amount, "amount")
        if valid.units // body.slices == 0:
            raise InvalidInput(
                "amount_too_small",
                "amount",
                f"{body.amount} {body.token_in} in {body.slices} slices rounds to nothing per slice",
            )
        return StrategyInput(
            **common,
            amount_units=valid.units,
            decimals_in=valid.token_in.decimals,
            slices=body.slices,
            interval_s=body.interval_s,
            limit_price=_plain(limit) if limit is not None else None,
        )

    async def _dca(self, body: StrategyCreate, common: dict[str, Any]) -> StrategyInput:
        if body.every is None:
            raise InvalidInput(
                "invalid_every", "every", 'a dca strategy needs every: a duration such as "30s", "5m", "1h"'
            )
        try:
            every = parse_duration(body.every)
        except ValueError as error:
            raise InvalidInput("invalid_every", "every", str(error)) from error
        if every.total_seconds() < 1:
            raise InvalidInput("invalid_every", "every", "every must be at least 1s")
        if body.orders is not None and not 1 <= body.orders <= MAX_DCA_ORDERS:
            raise InvalidInput("invalid_orders", "orders", f"orders must be 1–{MAX_DCA_ORDERS}")
        await self._child(body, body.amount_per_order, "amount_per_order")
        return StrategyInput(
            **common,
            amount_per_order=body.amount_per_order,
            every_s=int(every.total_seconds()),
            orders=body.orders,
        )

    async def _bracket(self, body: StrategyCreate, common: dict[str, Any]) -> StrategyInput:
        take = _price("take_profit_price", body.take_profit_price)
        stop = _price("stop_loss_price", body.stop_loss_price)
        if take is None:
            raise InvalidInput("missing_field", "take_profit_price", "a bracket needs take_profit_price")
        if stop is None and body.trailing_bps is None:
            raise InvalidInput(
                "missing_field", "stop_loss_price", "a bracket needs stop_loss_price (or trailing_bps)"
            )
        if stop is not None and take <= stop:
            raise InvalidInput(
                "invalid_bracket",
                "take_profit_price",
                f"take_profit_price ({take}) must be above stop_loss_price ({stop})",
            )
        if body.trailing_bps is not None and not 10 <= body.trailing_bps <= 5000:
            raise InvalidInput("invalid_trailing_bps", "trailing_bps", "trailing_bps must be 10–5000")
        expires_in_s = body.expires_in_s or BRACKET_DEFAULT_EXPIRY_S
        if not 1 <= expires_in_s <= BRACKET_DEFAULT_EXPIRY_S:
            raise InvalidInput("invalid_expiry", "expires_in_s", "expires_in_s must be 1–604800")
        valid = await self._child(
            body, body.amount, "amount", type=OrderType.TAKE_PROFIT, trigger_price=_plain(take)
        )
        if stop is not None:  # the stop leg as it will be placed
            await self._child(
                body, body.amount, "amount", type=OrderType.STOP_LOSS, trigger_price=_plain(stop)
            )
        price = await self._quotes.price(valid)
        now = format_price(price)
        if take <= price or (stop is not None and stop >= price):
            raise InvalidInput(
                "trigger_would_fire",
                "take_profit_price" if take <= price else "stop_loss_price",
                f"the price for this amount is {now} {body.token_out} per {body.token_in} now: "
                "a bracket needs its stop below it and its take-profit above it",
            )
        return StrategyInput(
            **common,
            amount=body.amount,
            take_profit_price=_plain(take),
            stop_loss_price=_plain(stop) if stop is not None else None,
            trailing_bps=body.trailing_bps,
            expires_in_s=expires_in_s,
        )


async def _views(session: AsyncSession, strategies: list[Strategy]) -> list[StrategyView]:
    """Each strategy with its progress and order counts (summed in PostgreSQL) and its
    newest orders: bounded however many orders it has placed."""
    ids = [s.id for s in strategies]
    totals = await repository.child_totals(session, ids)
    newest = await repository.newest_children(session, ids, CHILD_ORDERS_SHOWN)
    return [
        StrategyView.of(s, progress_of(s, totals[s.id]), newest[s.id], counts_of(totals[s.id]))
        for s in strategies
    ]


def _plain(price: Decimal) -> str:
    """A decimal string as orders take it: never in exponent form (`1E-7`)."""
    return format(price.normalize(), "f")


def _price(field: str, text: str | None) -> Decimal | None:
    """A price as an order's would be checked: positive, at most 18 decimals, under 10^22."""
    return None if text is None else positive_decimal(field, text)


@dataclass(frozen=True)
class Started:
    accepted: StrategyAccepted
    replayed: bool  # the same Idempotency-Key and body as an earlier request (200, not 202)


def _accepted(strategy: Strategy) -> StrategyAccepted:
    return StrategyAccepted.of(
        strategy.id, dca_schedule_id(strategy.id) if strategy.type is StrategyType.DCA else None
    )


def _expiry(now: datetime, expires_in_s: int | None) -> datetime | None:
    return now + timedelta(seconds=expires_in_s) if expires_in_s else None


def _summary(body: StrategyCreate) -> str:
    match body.type:
        case StrategyType.TWAP:
            return f"twap {body.amount} {body.token_in} → {body.token_out} in {body.slices} slices every {body.interval_s}s"
        case StrategyType.DCA:
            return f"dca {body.amount_per_order} {body.token_in} → {body.token_out} every {body.every}"
        case StrategyType.BRACKET:
            return (
                f"bracket {body.amount} {body.token_in} → {body.token_out}: take profit at "
                f"{body.take_profit_price}, stop at {body.stop_loss_price or f'{body.trailing_bps} bps trail'}"
            )


def build_strategies(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    temporal: Client,
    redis: Redis,
    quotes: QuoteService,
) -> StrategyService:
    return StrategyService(
        sessions,
        StrategyRuns(temporal),
        quotes,
        StrategyEventsPublisher(redis),
        StrategyLimits(settings.max_running_strategies_per_owner),
        KeyRateLimiter(redis, settings.placement_rate_per_key, RedisBreaker()),
        OrderRuns(temporal),
        OrderEvents(redis),
    )
