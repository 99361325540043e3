"""Placing and reading orders."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response, status
from redis.exceptions import RedisError
from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from api.auth import KeyDep, OperatorDep
from api.deps import MarketDep, OrderRateDep, RedisDep, SessionDep, SessionsDep, SettingsDep, TemporalDep
from api.errors import (
    IdempotencyKeyReused,
    IdempotencyRequestInFlight,
    InvalidOrder,
    OperatorRequired,
    OrderNotCancellable,
    OrderNotFound,
    ServiceUnavailable,
)
from api.limits import check_order_size
from api.operations import parse_duration, replay_order, stuck_orders
from api.order_starts import start_order_workflow
from api.schemas import OrderAccepted, OrderCreate, OrderPage, OrderView, StuckPage, Timeline
from core.api_keys import NAME_PATTERN, Principal
from core.domain import OrderStatus, OrderType
from core.ids import is_order_id, new_order_id
from core.metrics import ORDERS_CREATED
from market.simulation import SimulatedMarket
from market.tokens import Token, find_token, to_base_units
from storage import orders as store
from storage.events import EventPublisher, active_key
from storage.models import Order, utcnow
from workflows.order import OrderWorkflow

log = logging.getLogger(__name__)
router = APIRouter(tags=["orders"])

# Idempotency keys are honoured for 24 h, per owner.
IDEMPOTENCY_TTL = timedelta(hours=24)
# Longer than a request takes to start its workflow (START_TIMEOUT and then some): a key
# whose order is older and still not started lost its first request.
IN_FLIGHT_FOR = timedelta(seconds=10)
CANCEL_TIMEOUT = timedelta(seconds=6)
CANCEL_TRIES = 5
MAX_BASE_UNITS = 2**64
DEFAULT_EXPIRY_S = 3600
SNIPER_SYMBOL = re.compile(r"^[A-Z0-9]{2,10}$")


def _token(field: str, symbol_or_mint: str) -> Token:
    token = find_token(symbol_or_mint)
    if token is None:
        raise InvalidOrder("unknown_token", field, f"{symbol_or_mint!r} is not a listed token (GET /tokens)")
    return token


@dataclass(frozen=True)
class ValidOrder:
    token_in: Token
    token_out: str  # a symbol; for a sniper order possibly not listed yet
    units: int  # amount in base units of token_in
    limit_price: Decimal | None
    expires_in_s: int | None


def validate_order(body: OrderCreate, pairs: Collection[frozenset[str]]) -> ValidOrder:
    """Checks a schema-valid body against the market (`pairs`: what the pools trade)."""
    token_in = _token("token_in", body.token_in)
    if body.type == "sniper":
        # A sniper names a token that may not be listed yet: check its shape only.
        listed = find_token(body.token_out)
        token_out = listed.symbol if listed else body.token_out.upper()
        if listed is None and not SNIPER_SYMBOL.match(token_out):
            raise InvalidOrder(
                "invalid_token",
                "token_out",
                "must be a listed token or a symbol like NEWCOIN (^[A-Z0-9]{2,10}$)",
            )
    else:
        token_out = _token("token_out", body.token_out).symbol
    if token_in.symbol == token_out:
        raise InvalidOrder("same_token", "token_out", "token_in and token_out must differ")
    amount = Decimal(body.amount)
    if amount <= 0:
        raise InvalidOrder("invalid_amount", "amount", "must be greater than 0")
    decimals = -amount.as_tuple().exponent  # type: ignore[operator]
    if decimals > token_in.decimals:
        raise InvalidOrder(
            "invalid_amount", "amount", f"{token_in.symbol} has at most {token_in.decimals} decimals"
        )
    units = to_base_units(amount, token_in.decimals)
    if units >= MAX_BASE_UNITS:
        raise InvalidOrder("invalid_amount", "amount", "must be under 2^64 base units")
    if body.type != "sniper" and frozenset((token_in.symbol, token_out)) not in pairs:
        raise InvalidOrder("unsupported_pair", "token_out", f"no venue trades {token_in.symbol}/{token_out}")
    limit_price = None
    if body.type == "limit":
        if body.limit_price is None:
            raise InvalidOrder(
                "invalid_limit_price",
                "limit_price",
                "a limit order needs limit_price (token_out per token_in)",
            )
        limit_price = Decimal(body.limit_price)
        if limit_price <= 0:
            raise InvalidOrder("invalid_limit_price", "limit_price", "must be greater than 0")
    elif body.limit_price is not None:
        raise InvalidOrder("invalid_limit_price", "limit_price", f"{body.type} orders take no limit_price")
    expires_in_s = None
    if body.type == "market":
        if body.expires_in_s is not None:
            raise InvalidOrder(
                "invalid_expiry", "expires_in_s", "market orders do not wait, so they take no expiry"
            )
    else:
        expires_in_s = body.expires_in_s or DEFAULT_EXPIRY_S
    return ValidOrder(token_in, token_out, units, limit_price, expires_in_s)


# What the pools trade only grows (pools open, none close), so a pair or token this
# process has not seen yet is the one case that needs a fresh read.
_MAYBE_LISTED_SINCE = frozenset({"unknown_token", "unsupported_pair"})


async def _validate(body: OrderCreate, market: SimulatedMarket) -> ValidOrder:
    """validate_order against the pairs this process knows, read again only when the
    order names a token or pair it does not know: one may have been listed since."""
    known = market.known_pairs()
    if known is not None:
        try:
            return validate_order(body, known)
        except InvalidOrder as error:
            if error.code not in _MAYBE_LISTED_SINCE:
                raise
    return validate_order(body, await market.pairs())


def _request_hash(body: OrderCreate) -> str:
    canonical = json.dumps(body.model_dump(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _accepted(order_id: str) -> OrderAccepted:
    return OrderAccepted(
        order_id=order_id, status=OrderStatus.PENDING, ws_url=f"/ws/orders?orderId={order_id}"
    )


def _link(operation_id: str) -> dict[str, Any]:
    return {"operationId": operation_id, "parameters": {"order_id": "$response.body#/order_id"}}


# OpenAPI links: what a client (or a stateful fuzzer) can do with a placed order's id.
ORDER_LINKS = {
    "GetOrder": _link("get_order"),
    "GetOrderEvents": _link("order_timeline"),
    "CancelOrder": _link("cancel_order"),
}


@router.post(
    "/orders",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {"model": OrderAccepted, "description": "replay of an idempotent request", "links": ORDER_LINKS},
        202: {"links": ORDER_LINKS},
    },
)
async def place_order(
    body: OrderCreate,
    response: Response,
    session: SessionDep,
    temporal: TemporalDep,
    redis: RedisDep,
    market: MarketDep,
    principal: KeyDep,
    order_rate: OrderRateDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> OrderAccepted:
    """Place an order; watch it on the WebSocket at `ws_url`."""
    valid = await _validate(body, market)
    await check_order_size(
        principal, market, valid.token_in.symbol, Decimal(body.amount), settings.max_order_sol
    )
    await order_rate.take(principal)
    request_hash = _request_hash(body)
    now = utcnow()
    order = Order(
        id=new_order_id(),
        owner=principal.owner,
        type=body.type,
        status=OrderStatus.PENDING,
        token_in=valid.token_in.symbol,
        token_out=valid.token_out,
        amount=Decimal(body.amount),
        slippage_bps=body.slippage_bps,
        limit_price=valid.limit_price,
        expires_at=now + timedelta(seconds=valid.expires_in_s) if valid.expires_in_s else None,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        created_at=now,
        updated_at=now,
    )
    created_data = {
        "type": order.type,
        "token_in": order.token_in,
        "token_out": order.token_out,
        "amount_in": body.amount,
        "slippage_bps": order.slippage_bps,
    }
    if valid.limit_price is not None:
        created_data["limit_price"] = body.limit_price
    if order.expires_at is not None:
        created_data["expires_at"] = store.format_time(order.expires_at)
    for _ in range(2):  # a second pass only after freeing an expired key
        try:
            await store.create_order(session, order, created_data)
            break
        except store.IdempotencyKeyTaken as taken:
            existing = taken.existing
            if existing.created_at < now - IDEMPOTENCY_TTL:
                await store.release_idempotency_key(session, existing.id)
                continue
            if existing.request_hash != request_hash:
                raise IdempotencyKeyReused("this Idempotency-Key was used with a different body") from None
            if existing.accepted_at is None:
                if existing.created_at > now - IN_FLIGHT_FOR:
                    raise IdempotencyRequestInFlight(
                        "the first request with this Idempotency-Key is still being processed; retry shortly"
                    ) from None
                # The first request died before starting the workflow: this retry does it.
                await _start_or_unavailable(temporal, existing)
                await store.mark_accepted(session, existing.id)
            response.status_code = status.HTTP_200_OK
            return _accepted(existing.id)

    # Announce before the workflow starts, so no later transition can be overtaken.
    await _announce(redis, order, created_data)
    try:
        await start_order_workflow(temporal, order)
    except Exception as error:
        log.warning("could not start workflow for %s: %s", order.id, error)
        if await _workflow_exists(temporal, order.id):  # the start reached the server after all
            await store.mark_accepted(session, order.id)
            ORDERS_CREATED.labels(type=order.type).inc()
            return _accepted(order.id)
        await store.delete_unaccepted(session, order.id)
        with contextlib.suppress(RedisError):
            await redis.delete(active_key(order.id))
        raise ServiceUnavailable("the workflow engine is unreachable; nothing was stored, retry") from error
    await store.mark_accepted(session, order.id)
    ORDERS_CREATED.labels(type=order.type).inc()
    return _accepted(order.id)


async def _workflow_exists(temporal: Client, order_id: str) -> bool:
    try:
        await temporal.get_workflow_handle(order_id).describe(rpc_timeout=timedelta(seconds=2))
    except Exception:
        return False
    return True


async def _start_or_unavailable(temporal: Client, order: Order) -> None:
    try:
        await start_order_workflow(temporal, order)
    except Exception as error:
        raise ServiceUnavailable("the workflow engine is unreachable; retry with the same key") from error


async def _announce(redis: RedisDep, order: Order, data: dict[str, Any]) -> None:
    """Publish the PENDING event and the active snapshot. Best effort: PostgreSQL has
    the event already, and the worker's next transition writes the snapshot again."""
    event = {
        "type": "EVENT",
        "order_id": order.id,
        "seq": 1,
        "status": order.status,
        "at": store.format_time(order.created_at),
        "data": data,
    }
    try:
        await EventPublisher(redis).publish(store.order_view(order), event, terminal=False)
    except Exception as error:
        log.warning("could not publish PENDING of %s: %s", order.id, error)


async def owned_order(session: SessionDep, principal: Principal, order_id: str) -> Order:
    """The order, if `principal` may see it: another owner's order is "not found", so
    that its existence is not revealed."""
    order = await store.get_order(session, order_id) if is_order_id(order_id) else None
    if order is None or not (principal.operator or order.owner == principal.owner):
        raise OrderNotFound(f"no order {order_id}")
    return order


@router.get("/orders/stuck", response_model=StuckPage)
async def list_stuck_orders(
    sessions: SessionsDep,
    temporal: TemporalDep,
    _: OperatorDep,
    older_than: Annotated[str, Query(max_length=16, description="e.g. 30s, 5m, 2h")] = "5m",
) -> dict[str, Any]:
    """Operator: non-terminal orders (not WAITING) unchanged for longer than `older_than`,
    with what Temporal says of each workflow (`order-engine orders stuck`)."""
    try:
        threshold = parse_duration(older_than)
    except ValueError as error:
        raise InvalidOrder("invalid_duration", "older_than", str(error)) from None
    stuck = await stuck_orders(sessions, temporal, threshold)
    return {
        "items": [
            {
                "order_id": order.order_id,
                "status": order.status,
                "type": order.type,
                "stuck_for_s": round(order.age.total_seconds(), 1),
                "workflow": order.workflow,
            }
            for order in stuck
        ]
    }


@router.get("/orders/{order_id}", response_model=OrderView, operation_id="get_order")
async def get_order(order_id: str, session: SessionDep, principal: KeyDep) -> dict[str, Any]:
    """One order, as it stands."""
    return store.order_view(await owned_order(session, principal, order_id))


@router.get("/orders", response_model=OrderPage)
async def list_orders(
    session: SessionDep,
    principal: KeyDep,
    owner: Annotated[
        str | None,
        Query(pattern=NAME_PATTERN.pattern, description="operator keys: only this owner's orders"),
    ] = None,
    status_: Annotated[OrderStatus | None, Query(alias="status")] = None,
    type_: Annotated[OrderType | None, Query(alias="type")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
) -> dict[str, Any]:
    """Your orders, newest first (an operator key sees everyone's); pass `next_cursor`
    back as `cursor` for the next page."""
    if cursor is not None and not is_order_id(cursor):
        raise InvalidOrder("invalid_cursor", "cursor", "not a cursor returned by this endpoint")
    if not principal.operator:
        if owner is not None and owner != principal.owner:
            raise OperatorRequired("only an operator key may list another owner's orders")
        owner = principal.owner
    page = await store.list_orders(
        session,
        owner=owner,
        status=status_,
        order_type=type_,
        before_id=cursor,
        limit=limit + 1,
    )
    items = page[:limit]
    return {
        "items": [store.order_view(o) for o in items],
        "next_cursor": items[-1].id if len(page) > limit else None,
    }


@router.get("/orders/{order_id}/events", response_model=Timeline, operation_id="order_timeline")
async def order_timeline(order_id: str, session: SessionDep, principal: KeyDep) -> dict[str, Any]:
    """Every lifecycle event (with `seq`) and every recorded failure, in time order."""
    await owned_order(session, principal, order_id)
    events = await store.list_events(session, order_id)
    failures = await store.list_failures(session, order_id)
    # A failure sorts before the retry event it caused (same instant or earlier).
    items = sorted(
        [(f.created_at, 0, f.id or 0, store.failure_view(f)) for f in failures]
        + [(e.at, 1, e.seq, store.event_view(e)) for e in events],
        key=lambda item: item[:3],
    )
    return {"items": [item[3] for item in items]}


@router.post("/orders/{order_id}/cancel", status_code=status.HTTP_202_ACCEPTED, operation_id="cancel_order")
async def cancel_order(
    order_id: str, session: SessionDep, temporal: TemporalDep, principal: KeyDep
) -> dict[str, Any]:
    """Cancel an order that has not started executing (PENDING or WAITING); 409 after."""
    order = await owned_order(session, principal, order_id)
    if OrderStatus(order.status).is_terminal:
        raise OrderNotCancellable(f"{order_id} is already {order.status}")
    try:
        accepted = await _ask_to_cancel(temporal, order_id)
    except WorkflowUpdateFailedError as error:
        raise OrderNotCancellable(f"{order_id} could not be cancelled: {error}") from error
    except WorkflowUpdateRPCTimeoutOrCancelledError as error:
        raise ServiceUnavailable("no worker answered the cancel request in time; retry") from error
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:  # the workflow has just finished
            raise OrderNotCancellable(f"{order_id} has already finished") from error
        log.warning("cancel of %s failed: %s: %s", order_id, error.status, error)
        raise ServiceUnavailable(
            f"the workflow engine refused the cancel for now ({error}); retry"
        ) from error
    if not accepted:
        raise OrderNotCancellable(f"{order_id} is already executing")
    return {"order_id": order_id, "status": order.status, "cancel": "accepted"}


async def _ask_to_cancel(temporal: Client, order_id: str) -> bool:
    """The cancel update, asked again when it did not get through: an update sent while
    an operator resets the workflow can be lost with the old run, and Temporal refuses
    one for the moment (FAILED_PRECONDITION, "unexpected workflow task failure") after a
    workflow task failed; in the fuzz runs that did so, the worker had logged "Workflow
    task not found" seconds before. The same update id is answered once."""
    update_id = f"cancel-{uuid.uuid4().hex}"
    for attempt in range(1, CANCEL_TRIES + 1):
        try:
            accepted: bool = await temporal.get_workflow_handle(order_id).execute_update(
                OrderWorkflow.cancel, id=update_id, rpc_timeout=CANCEL_TIMEOUT
            )
            return accepted
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            if attempt >= 2:
                raise
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND or attempt == CANCEL_TRIES:
                raise
            log.warning("cancel of %s refused for now (%s: %s); asking again", order_id, error.status, error)
            await asyncio.sleep(0.2 * attempt)
    raise AssertionError("unreachable")


@router.post("/orders/{order_id}/replay", status_code=status.HTTP_202_ACCEPTED)
async def replay(
    order_id: str, session: SessionDep, sessions: SessionsDep, temporal: TemporalDep, principal: OperatorDep
) -> dict[str, Any]:
    """Operator: re-drive a stuck or failed order (never executed twice on chain)."""
    await owned_order(session, principal, order_id)
    return {"order_id": order_id, "action": await replay_order(sessions, temporal, order_id)}
