"""Firm quotes (POST /quotes): everything an order would do up to its route — both venues,
every split, up to 3 hops — and what landing it would cost; nothing is reserved or
placed. A quote belongs to its owner, lasts QUOTE_TTL, and places at most one order.

Planning a route is 10–35 ms of pure Python: it runs in the process's planning threads,
so the event loop goes on serving other requests meanwhile."""

from __future__ import annotations

import asyncio
import functools
import logging
from concurrent.futures import Executor
from datetime import datetime, timedelta
from decimal import Decimal

from pydantic import TypeAdapter
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounts.keys import Principal
from accounts.limits import KeyRateLimiter, RateBucket
from contracts.orders import RouteDecision
from core.domain import SwapMode
from core.formatting import format_amount, format_price, format_time, from_base_units
from core.ids import is_quote_id, new_quote_id
from core.settings import Settings
from market import Market
from market.clock import MarketClock
from market.compute import estimate_limit, wraps_of
from market.fees import compute_unit_price, fee
from market.routing import NoRoute, RoutePlan, plan_route
from market.sources import FeeLevelSource, MarketPools
from market.tokens import decimals_of
from orders import quote_repository
from orders.errors import InvalidOrder, QuoteExpired, QuoteNotFound, QuoteUsed
from orders.routes import route_decision
from orders.schemas import OrderCreate, QuoteAnswer, QuoteCreate, QuoteFees, QuoteLegView
from orders.validation import MAYBE_LISTED_SINCE, ValidOrder, validate_order
from storage.models import Quote, utcnow
from storage.redis import RedisBreaker

log = logging.getLogger(__name__)

QUOTE_TTL = timedelta(seconds=30)
ROUTE = TypeAdapter(RouteDecision)
# An unused quote is deleted this long after it expired: until then placing from it
# says `quote_expired` rather than `quote_not_found`. A used one stays with its order.
QUOTE_PURGE_GRACE = timedelta(minutes=10)
PURGE_EVERY_S = 30.0
PURGE_BATCH = 1000
PURGE_BATCHES_PER_ROUND = 20


class QuoteService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        pools: MarketPools,
        fees: FeeLevelSource,
        clock: MarketClock,
        rate: KeyRateLimiter,
        planning: Executor | None,
    ) -> None:
        """`planning`: the threads that plan routes (None: on the caller's loop, for a
        one-off command)."""
        self._sessions, self._pools, self._fees, self._clock = sessions, pools, fees, clock
        self._rate, self._planning = rate, planning

    async def create(self, principal: Principal, body: QuoteCreate) -> QuoteAnswer:
        await self._rate.take(principal)  # refused quotes count too
        order = body.as_order()
        valid = await self.validate(order)
        plan = await self.plan(valid)
        decision = route_decision(plan, body.slippage_bps)
        now, quote_id = utcnow(), new_quote_id()
        answer = self._answer(
            quote_id, now + QUOTE_TTL, valid, plan, decision, await self._fee_estimate(plan, valid)
        )
        async with self._sessions() as session, session.begin():
            await quote_repository.insert(
                session,
                Quote(
                    id=quote_id,
                    owner=principal.owner,
                    request=body.model_dump(mode="json"),
                    answer=answer.model_dump(mode="json"),
                    route=ROUTE.dump_python(decision, mode="json"),
                    expires_at=now + QUOTE_TTL,
                    created_at=now,
                ),
            )
        return answer

    async def validate(self, body: OrderCreate) -> ValidOrder:
        """validate_order against the pairs this process knows, read again only when the
        order names a token or pair it does not know: one may have been listed since."""
        known = self._pools.known_pairs()
        if known is not None:
            try:
                return validate_order(body, known)
            except InvalidOrder as error:
                if error.code not in MAYBE_LISTED_SINCE:
                    raise
        return validate_order(body, await self._pools.pairs())

    async def price(self, valid: ValidOrder) -> Decimal:
        """The route's net price now for the order's amount: token_out per token_in."""
        plan = await self.plan(valid)
        return from_base_units(plan.amount_out, decimals_of(valid.token_out)) / from_base_units(
            plan.amount_in, valid.token_in.decimals
        )

    async def plan(self, valid: ValidOrder) -> RoutePlan:
        """The best route now; 422 when nothing connects the pair or can fill the amount."""
        pools = await self._pools.all()
        planning = functools.partial(
            plan_route,
            pools,
            valid.token_in.symbol,
            valid.token_out,
            valid.units,
            mode=valid.swap_mode,
            max_hops=valid.max_hops,
            dexes=valid.dexes,
            now=self._clock.now(),
        )
        try:
            if self._planning is None:
                return planning()
            # Pools are immutable values: a thread may read them while the loop goes on.
            return await asyncio.get_running_loop().run_in_executor(self._planning, planning)
        except NoRoute as none:
            if none.liquidity:
                raise InvalidOrder("insufficient_liquidity", "amount", str(none)) from None
            raise InvalidOrder("unsupported_pair", "token_out", str(none)) from None

    async def for_order(self, principal: Principal, quote_id: str, replaying: bool = False) -> Quote:
        """The owner's quote, if it may still place an order (checked again, atomically,
        when the order is stored). `replaying`: a request with an Idempotency-Key may be
        the repeat of the one that used it (the key decides, when the order is stored)."""
        quote = await self.owned(principal, quote_id)
        if quote.used_by is not None and not replaying:
            raise QuoteUsed(f"{quote_id} placed {quote.used_by} already; ask for a new quote")
        if quote.expires_at <= utcnow():
            raise QuoteExpired(f"{quote_id} expired at {format_time(quote.expires_at)}; ask for a new quote")
        return quote

    async def purge_expired(self) -> int:
        """Delete the unused quotes that expired more than QUOTE_PURGE_GRACE ago, a
        bounded batch at a time; how many were deleted."""
        deleted = 0
        for _ in range(PURGE_BATCHES_PER_ROUND):
            async with self._sessions() as session, session.begin():
                batch = await quote_repository.delete_unused_expired(
                    session, utcnow() - QUOTE_PURGE_GRACE, PURGE_BATCH
                )
            deleted += batch
            if batch < PURGE_BATCH:
                break
        return deleted

    async def run_purge(self, every_s: float = PURGE_EVERY_S) -> None:
        """Purge expired quotes every `every_s`, for as long as the process runs (every API
        process does: concurrent purges skip each other's rows)."""
        while True:
            try:
                await self.purge_expired()
            except Exception as error:  # the database may be restarting: next round
                log.warning("purging expired quotes failed: %s", error)
            await asyncio.sleep(every_s)

    async def owned(self, principal: Principal, quote_id: str) -> Quote:
        """The owner's quote as it was given, used or expired or not."""
        async with self._sessions() as session:
            quote = await quote_repository.get(session, quote_id) if is_quote_id(quote_id) else None
        if quote is None or quote.owner != principal.owner:
            raise QuoteNotFound(f"no quote {quote_id}")
        return quote

    @staticmethod
    def route_of(quote: Quote) -> RouteDecision:
        return ROUTE.validate_python(quote.route)

    async def _fee_estimate(self, plan: RoutePlan, valid: ValidOrder) -> QuoteFees:
        """What landing would cost now, at the order's priority fee, first attempt."""
        limit = estimate_limit(
            [(leg.dex, leg.bins_crossed) for leg in plan.legs],
            wraps_of(valid.token_in.symbol, valid.token_out),
        )
        price = compute_unit_price(valid.landing, await self._fees.levels(), limit, 0)
        paid = fee(limit, price, valid.landing.tip_lamports)
        return QuoteFees(
            network_lamports=paid.network_lamports,
            priority_lamports=paid.priority_lamports,
            tip_lamports=paid.tip_lamports,
        )

    def _answer(
        self,
        quote_id: str,
        expires_at: datetime,
        valid: ValidOrder,
        plan: RoutePlan,
        decision: RouteDecision,
        fees: QuoteFees,
    ) -> QuoteAnswer:
        token_in, token_out = valid.token_in.symbol, valid.token_out
        decimals_in, decimals_out = valid.token_in.decimals, decimals_of(token_out)
        price = from_base_units(plan.amount_out, decimals_out) / from_base_units(plan.amount_in, decimals_in)
        exact_out = plan.mode is SwapMode.EXACT_OUT
        return QuoteAnswer(
            quote_id=quote_id,
            expires_at=format_time(expires_at),
            swap_mode=plan.mode,
            token_in=token_in,
            token_out=token_out,
            amount_in=format_amount(plan.amount_in, decimals_in),
            amount_out=format_amount(plan.amount_out, decimals_out),
            min_amount_out=None if exact_out else format_amount(decision.min_amount_out, decimals_out),
            max_amount_in=format_amount(decision.max_amount_in or 0, decimals_in) if exact_out else None,
            price=format_price(price),
            price_impact_bps=plan.price_impact_bps,
            slot=self._clock.current_slot(),
            route=[
                QuoteLegView(
                    dex=leg.dex,
                    pool=leg.pool,
                    token_in=leg.token_in,
                    token_out=leg.token_out,
                    amount_in=format_amount(leg.amount_in, decimals_of(leg.token_in)),
                    amount_out=format_amount(leg.amount_out, decimals_of(leg.token_out)),
                    fee_amount=format_amount(leg.fee_amount, decimals_of(leg.token_in)),
                    percent=leg.share_bps / 100,
                )
                for leg in plan.legs
            ],
            fees=fees,
        )


def build_quotes(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    market: Market,
    redis: Redis,
    breaker: RedisBreaker,
    planning: Executor | None,
) -> QuoteService:
    return QuoteService(
        sessions,
        market.pools,
        market.fees,
        market.clock,
        KeyRateLimiter(redis, settings.quotes_per_minute_per_key, breaker, RateBucket.QUOTES),
        planning,
    )
