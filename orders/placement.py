"""Placing an order: validate it, apply the abuse limits, store it with its first event
(resolving the Idempotency-Key), announce it, start its workflow, mark it accepted."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounts.keys import Principal
from accounts.limits import KeyRateLimiter
from contracts.landing import FEE_BUDGET_ATTEMPTS
from core.domain import OrderStatus, OrderType, SwapMode
from core.errors import ServiceUnavailable
from core.formatting import format_amount, format_decimal, format_price, format_time, from_base_units
from core.ids import STRATEGY_ID_PREFIX, new_order_id
from core.metrics import ORDERS_CREATED
from core.order_kinds import Direction, PriceField, kind_of
from core.settings import Settings
from market import Market
from market.sources import MarketPools
from market.tokens import decimals_of
from market.valuation import sol_value
from orders import quote_repository, repository
from orders.errors import (
    IdempotencyKeyReused,
    IdempotencyRequestInFlight,
    InsufficientFunds,
    InvalidIdempotencyKey,
    InvalidOrder,
    QuoteMismatch,
    QuoteUsed,
    TooManyOpenOrders,
)
from orders.events import OrderEvents
from orders.landing import request_view
from orders.quotes import QuoteService
from orders.routes import maximum_in
from orders.runs import OrderRuns
from orders.schemas import EventView, OrderAccepted, OrderCreate, OrderView
from orders.triggers import fires, trailing_trigger
from orders.validation import ValidOrder
from storage.models import Order, Quote, utcnow
from storage.redis import RedisBreaker
from wallets import repository as wallet_repository
from wallets.custody import OnChain
from wallets.errors import InsufficientFunds as StoreInsufficientFunds
from wallets.schemas import Hold
from wallets.service import Wallets

log = logging.getLogger(__name__)

# Idempotency keys are honoured for 24 h, per owner.
IDEMPOTENCY_TTL = timedelta(hours=24)
# Longer than a request takes to start its workflow (START_TIMEOUT and then some): a key
# whose order is older and still not started lost its first request.
IN_FLIGHT_FOR = timedelta(seconds=10)


@dataclass(frozen=True)
class PlacementLimits:
    """Per owner and per order (operator keys are exempt)."""

    max_order_sol: Decimal
    max_open_orders: int


@dataclass(frozen=True)
class Armed:
    """Where a triggered order's condition starts: its trigger, a trailing stop's peak."""

    trigger_price: Decimal | None
    peak_price: Decimal | None


@dataclass(frozen=True)
class Placed:
    accepted: OrderAccepted
    replayed: bool  # the same Idempotency-Key and body as an earlier request (200, not 202)


class OrderPlacement:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        runs: OrderRuns,
        events: OrderEvents,
        pools: MarketPools,
        wallets: Wallets,
        rate: KeyRateLimiter,
        limits: PlacementLimits,
        breaker: RedisBreaker,
        quotes: QuoteService,
    ) -> None:
        self._sessions, self._runs, self._events = sessions, runs, events
        self._pools, self._wallets, self._rate, self._limits = pools, wallets, rate, limits
        self._breaker, self._quotes = breaker, quotes

    async def place(
        self, principal: Principal, body: OrderCreate, idempotency_key: str | None, parent: str | None = None
    ) -> Placed:
        """Validate, reserve and store the order, then start its workflow. An order a
        strategy places (`parent`) is its child: the strategy's workflow starts it, so
        it is accepted as soon as it is stored, and it is not held to the per-key rate
        (the strategy was)."""
        if idempotency_key is not None:
            if parent is None and idempotency_key.startswith(STRATEGY_ID_PREFIX):
                raise InvalidIdempotencyKey(
                    f"keys starting with {STRATEGY_ID_PREFIX!r} are reserved for strategies' orders"
                )
            # Before every other check: a repeat gets the first answer, whatever changed since.
            earlier = await self._earlier(principal, body, idempotency_key)
            if earlier is not None:
                return earlier
        if parent is None:
            await self._rate.take(principal)  # refused placements count too
        quoted: Quote | None = None
        request = body
        if body.quote_id is not None:
            quoted = await self._quotes.for_order(
                principal, body.quote_id, replaying=idempotency_key is not None
            )
            request = _quoted_order(body, quoted)
        valid = await self._quotes.validate(request)
        spend = await self._spend(valid, request, quoted)
        armed = await self._arm(request.type, valid)
        await self._check_size(
            principal, valid.token_in.symbol, from_base_units(spend, valid.token_in.decimals)
        )
        now = utcnow()
        order, data = _new_order(principal, request, valid, idempotency_key, now, spend, quoted, armed)
        if parent is not None:
            order.parent_id, order.accepted_at = parent, now
            data["parent_id"] = parent
        # On the real chain: the owner's balances now, read before the transaction (that
        # waits on no RPC call) and applied in it just before the reservation.
        on_chain = await self._wallets.read_chain(principal.owner)
        async with self._sessions() as session:
            # One unit of work: the order and its first event stored, its quote claimed, its
            # owner's open orders counted, what it may spend reserved: all or nothing.
            async with session.begin():
                await self._wallets.ensure(session, principal.owner)
                existing = await self._insert(session, order, data, now)
                if existing is None:
                    if quoted is not None and not await quote_repository.claim(
                        session, quoted.id, principal.owner, order.id, now
                    ):
                        await self._quotes.for_order(principal, quoted.id)  # says why: used, expired
                        raise QuoteUsed(f"{quoted.id} was used meanwhile")
                    await self._check_open_orders(session, principal)
                    await self._reserve(session, order, valid, spend, on_chain)
            self._wallets.exists(principal.owner)
            if existing is not None:
                return Placed(
                    await self._replay_of(session, existing, order.request_hash, now), replayed=True
                )
            await self._announce(order, data)
            if parent is None:
                await self._start(session, order)
        ORDERS_CREATED.labels(type=order.type).inc()
        return Placed(OrderAccepted.of(order.id), replayed=False)

    async def _start(self, session: AsyncSession, order: Order) -> None:
        """Start the workflow and mark the order accepted. When the start may have reached
        Temporal (a timeout), the order stays: it is accepted, and the reconciler starts
        its workflow if it is not running yet (starting is idempotent). Only a start that
        surely never reached Temporal undoes the order."""
        try:
            await self._runs.start(order)
        except Exception as error:
            log.warning("could not start workflow for %s: %s", order.id, error)
            if await self._runs.exists(order.id):
                pass  # it did reach Temporal
            elif OrderRuns.maybe_reached(error):
                log.warning("%s: its start may have reached Temporal; the reconciler settles it", order.id)
                return
            else:
                async with session.begin():
                    await repository.delete_unaccepted(session, order.id)
                await self._forget(order.id)
                raise ServiceUnavailable(
                    "the workflow engine is unreachable; nothing was stored, retry"
                ) from error
        await repository.mark_accepted(session, order.id)

    async def _check_open_orders(self, session: AsyncSession, principal: Principal) -> None:
        """An owner may have at most max_open_orders queued or waiting (the new one
        included). Locking the owner's wallet makes the count exact across API processes;
        taken this late, and not at all for operators, so it serializes as little as it
        can (the reservation needs no lock: it is one conditional update)."""
        if principal.operator:
            return
        await wallet_repository.lock(session, principal.owner)
        open_orders = await repository.count_open(session, principal.owner)
        if open_orders > self._limits.max_open_orders:
            raise TooManyOpenOrders(
                f"{principal.owner} has {open_orders - 1} open orders, the most an owner may have is "
                f"{self._limits.max_open_orders}; wait for some to finish or cancel them"
            )

    async def _spend(self, valid: ValidOrder, request: OrderCreate, quoted: Quote | None) -> int:
        """The most the order may spend of token_in (base units): its amount (exact-in),
        or the expected input plus slippage (exact-out: the quote's, or a route now)."""
        if valid.swap_mode is SwapMode.EXACT_IN:
            return valid.units
        if quoted is not None:
            route = QuoteService.route_of(quoted)
            if route.max_amount_in is not None:
                return route.max_amount_in
        plan = await self._quotes.plan(valid)
        return maximum_in(plan.amount_in, request.slippage_bps)

    async def _arm(self, order_type: OrderType, valid: ValidOrder) -> Armed | None:
        """A stop or take-profit must not fire at once: 422 when the price is already past
        its trigger. A trailing stop starts from the price now."""
        kind = kind_of(order_type)
        if not kind.at_market:
            return None
        price = await self._quotes.price(valid)
        now = format_price(price)
        pair = f"{valid.token_out} per {valid.token_in.symbol}"
        if kind.requires is PriceField.TRIGGER_PRICE and valid.trigger_price is not None:
            if fires(order_type, price, valid.trigger_price):
                side = "below" if kind.fires is Direction.FALLS else "above"
                raise InvalidOrder(
                    "trigger_would_fire",
                    "trigger_price",
                    f"the price for this amount is {now} {pair} now: a {order_type.replace('_', '-')} at "
                    f"{valid.trigger_price} would fire at once; set it {side}",
                )
        if kind.trails and valid.trailing_bps is not None:
            peak = Decimal(now)
            trigger = trailing_trigger(peak, valid.trailing_bps)
            if valid.trigger_price is not None:  # its floor
                if valid.trigger_price >= price:
                    raise InvalidOrder(
                        "trigger_would_fire",
                        "trigger_price",
                        f"the price for this amount is {now} {pair} now: a trailing stop's floor at "
                        f"{valid.trigger_price} would fire at once; set it below",
                    )
                trigger = max(trigger, valid.trigger_price)
            return Armed(trigger, peak)
        return Armed(valid.trigger_price, None)

    async def _reserve(
        self, session: AsyncSession, order: Order, valid: ValidOrder, spend: int, on_chain: OnChain | None
    ) -> None:
        # What it trades, and the fees of every attempt it may make (in SOL).
        hold = Hold(order.owner, valid.token_in.symbol, spend, valid.landing.fee_budget_lamports)
        await self._wallets.refresh(session, on_chain, hold)
        try:
            await wallet_repository.reserve(session, order.id, hold)
        except StoreInsufficientFunds as short:
            decimals = decimals_of(short.token)
            budget = (
                f" (fees of up to {FEE_BUDGET_ATTEMPTS} attempts included: "
                f"{format_amount(hold.fee_lamports, 9)} SOL)"
                if short.token == "SOL" and hold.fee_lamports
                else ""
            )
            raise InsufficientFunds(
                f"this order may spend {format_amount(short.needed, decimals)} {short.token}{budget}; "
                f"{format_amount(short.available, decimals)} {short.token} are available (GET /wallet)"
            ) from None

    async def _check_size(self, principal: Principal, token: str, amount: Decimal) -> None:
        """Orders are capped at max_order_sol SOL-equivalent, at the pools' mid prices now."""
        if principal.operator:
            return
        pools = [] if token == "SOL" else await self._pools.all(token, "SOL")
        value = sol_value(pools, token, amount)
        if value is None:  # no SOL pool: price it through USDC
            pools = await self._pools.all(token, "USDC") + await self._pools.all("SOL", "USDC")
            value = sol_value(pools, token, amount)
        if value is not None and value > self._limits.max_order_sol:
            raise InvalidOrder(
                "order_too_large",
                "amount",
                f"{amount} {token} is about {value:.0f} SOL; an order is capped at {self._limits.max_order_sol} SOL-equivalent",
            )

    async def _insert(
        self, session: AsyncSession, order: Order, data: dict[str, Any], now: datetime
    ) -> Order | None:
        """Store the order; the owner's earlier order with the same Idempotency-Key
        instead, when there is one (a key older than 24 h is freed and reused)."""
        for _ in range(2):
            if await repository.insert_order(session, order, data):
                return None
            assert order.idempotency_key is not None  # only the key's constraint can refuse the insert
            existing = await repository.find_by_idempotency_key(session, order.owner, order.idempotency_key)
            if existing is None:
                continue  # freed meanwhile: try again
            if existing.created_at >= now - IDEMPOTENCY_TTL:
                return existing
            await repository.release_idempotency_key(session, existing.id)
        raise IdempotencyRequestInFlight(
            "this Idempotency-Key is being used by another request; retry shortly"
        )

    async def _earlier(self, principal: Principal, body: OrderCreate, idempotency_key: str) -> Placed | None:
        """The answer to a repeat of an earlier request with this key (None: there was
        none, or it is older than 24 h). It comes before any check, so a retry gets what
        the first request got even when its quote has expired, the price has moved or
        the owner's funds are reserved since (by that very order, say)."""
        now = utcnow()
        async with self._sessions() as session:
            existing = await repository.find_by_idempotency_key(session, principal.owner, idempotency_key)
            if existing is None or existing.created_at < now - IDEMPOTENCY_TTL:
                return None
            request = body
            quoted = (existing.quote or {}).get("quote_id")
            if body.quote_id is not None and body.quote_id == quoted:
                # The order was stored as the market order its quote describes.
                try:
                    request = _quoted_order(body, await self._quotes.owned(principal, body.quote_id))
                except QuoteMismatch:
                    raise IdempotencyKeyReused(
                        "this Idempotency-Key was used with a different body"
                    ) from None
            return Placed(await self._replay_of(session, existing, request_hash(request), now), replayed=True)

    async def _replay_of(
        self, session: AsyncSession, existing: Order, request_hash: str | None, now: datetime
    ) -> OrderAccepted:
        """The answer to a request that repeats an earlier one's Idempotency-Key."""
        if existing.request_hash != request_hash:
            raise IdempotencyKeyReused("this Idempotency-Key was used with a different body")
        if existing.accepted_at is None:
            if existing.created_at > now - IN_FLIGHT_FOR:
                raise IdempotencyRequestInFlight(
                    "the first request with this Idempotency-Key is still being processed; retry shortly"
                )
            # The first request died before starting the workflow: this retry does it.
            try:
                await self._runs.start(existing)
            except Exception as error:
                raise ServiceUnavailable(
                    "the workflow engine is unreachable; retry with the same key"
                ) from error
            await repository.mark_accepted(session, existing.id)
        return OrderAccepted.of(existing.id)

    async def _announce(self, order: Order, data: dict[str, Any]) -> None:
        """Publish the PENDING event and the active snapshot before the workflow starts,
        so no later transition can be overtaken. Best effort: PostgreSQL has the event
        already, and the worker's next transition writes the snapshot again."""
        event = EventView(
            order_id=order.id, seq=1, status=order.status, at=format_time(order.created_at), data=data
        )
        await self._breaker.attempt(
            self._events.publish(OrderView.of(order), event), f"publishing PENDING of {order.id}"
        )

    async def _forget(self, order_id: str) -> None:
        await self._breaker.attempt(self._events.forget(order_id), f"dropping the snapshot of {order_id}")


def build_placement(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    runs: OrderRuns,
    redis: Redis,
    market: Market,
    quotes: QuoteService,
    breaker: RedisBreaker,
) -> OrderPlacement:
    """The placement the API's routes and the strategy workflows' activities share."""
    return OrderPlacement(
        sessions,
        runs,
        OrderEvents(redis),
        market.pools,
        market.wallets,
        KeyRateLimiter(redis, settings.placement_rate_per_key, breaker),
        PlacementLimits(settings.max_order_sol, settings.max_open_orders_per_owner),
        breaker,
        quotes,
    )


def child_idempotency_key(strategy_id: str, key: str) -> str:
    """A strategy's child order's key: in a namespace no owner can post into (client keys
    starting with the strategy id prefix are refused), so no request can take a child's
    place, or keep it from being placed."""
    return f"{strategy_id}:{key}"


def request_hash(body: BaseModel) -> str:
    """What makes two requests with one Idempotency-Key the same request."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _new_order(
    principal: Principal,
    body: OrderCreate,
    valid: ValidOrder,
    idempotency_key: str | None,
    now: datetime,
    spend: int,
    quoted: Quote | None,
    armed: Armed | None = None,
) -> tuple[Order, dict[str, Any]]:
    """The order row, and the data of its first (PENDING) event."""
    exact_out = valid.swap_mode is SwapMode.EXACT_OUT
    order = Order(
        id=new_order_id(),
        owner=principal.owner,
        type=body.type,
        status=OrderStatus.PENDING,
        token_in=valid.token_in.symbol,
        token_out=valid.token_out,
        amount=valid.amount,
        slippage_bps=body.slippage_bps,
        limit_price=valid.limit_price,
        expires_at=now + timedelta(seconds=valid.expires_in_s) if valid.expires_in_s else None,
        idempotency_key=idempotency_key,
        request_hash=request_hash(body),
        landing=request_view(valid.landing),
        swap_mode=valid.swap_mode,
        max_amount_in=from_base_units(spend, valid.token_in.decimals) if exact_out else None,
        max_hops=valid.max_hops,
        dexes=valid.dexes,
        quote={"quote_id": quoted.id, "route": quoted.route} if quoted is not None else None,
        trigger_price=armed.trigger_price if armed is not None else None,
        trailing_bps=valid.trailing_bps,
        peak_price=armed.peak_price if armed is not None else None,
        created_at=now,
        updated_at=now,
    )
    data: dict[str, Any] = {
        "type": order.type,
        "token_in": order.token_in,
        "token_out": order.token_out,
        "amount_in": body.amount if not exact_out else None,
        "slippage_bps": order.slippage_bps,
    }
    if exact_out:
        data.update(
            swap_mode=str(valid.swap_mode),
            amount_out=body.amount,
            max_amount_in=format_decimal(order.max_amount_in),
        )
    if valid.max_hops != 1 or valid.dexes is not None:
        data["max_hops"] = valid.max_hops
    if valid.dexes is not None:
        data["dexes"] = valid.dexes
    if quoted is not None:
        data["quote_id"] = quoted.id
    if valid.limit_price is not None:
        data["limit_price"] = body.limit_price
    if order.trigger_price is not None:
        data["trigger_price"] = format_decimal(order.trigger_price)
    if order.trailing_bps is not None:
        data["trailing_bps"] = order.trailing_bps
    if order.expires_at is not None:
        data["expires_at"] = format_time(order.expires_at)
    data.update(order.landing or {})
    return order, data


# What a quote fixes; an order placed from it may repeat these, not change them.
QUOTED_FIELDS = (
    "token_in",
    "token_out",
    "amount",
    "swap_mode",
    "slippage_bps",
    "priority_fee",
    "tip_lamports",
    "simulate",
    "dexes",
    "max_hops",
)


def _quoted_order(body: OrderCreate, quote: Quote) -> OrderCreate:
    """The market order a quote describes; 422 quote_mismatch when the body says otherwise."""
    quoted = OrderCreate(
        type=OrderType.MARKET, quote_id=quote.id, **{k: quote.request[k] for k in QUOTED_FIELDS}
    )
    for name in body.model_fields_set - {"quote_id"}:
        if name not in QUOTED_FIELDS or getattr(body, name) != getattr(quoted, name):
            raise QuoteMismatch(name, f"{name} differs from quote {quote.id}; send the quote_id alone")
    return quoted
