"""What each lifecycle step changes on the order row and says in its event: the typed
facts the workflow reports (contracts/orders.py) turned into columns and display values.

Pure: no I/O. Amounts arrive in base units and leave as decimal strings in human units.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from contracts.orders import (
    Confirmed,
    Ended,
    Failed,
    QuoteResult,
    Reopened,
    RetryScheduled,
    Routed,
    RouteDecision,
    RouteLeg,
    RoutingStarted,
    Submitted,
    TransitionRequest,
    Waiting,
)
from core.domain import OrderStatus
from core.formatting import format_amount, format_epoch, format_price, from_base_units
from core.order_kinds import Direction, WaitKind, kind_of
from market.tokens import find_token
from orders.landing import execution_view


@dataclass(frozen=True)
class OrderPatch:
    """The order columns a step sets; None leaves a column as it is."""

    quotes: list[dict[str, Any]] | None = None
    route: list[dict[str, Any]] | None = None
    selected_dex: str | None = None
    min_amount_out: Decimal | None = None
    amount_out: Decimal | None = None
    executed_price: Decimal | None = None
    tx_hash: str | None = None
    attempts: int | None = None
    failure_reason: str | None = None
    amount_in_filled: Decimal | None = None
    execution: dict[str, Any] | None = None
    clear_failure_reason: bool = False  # an operator's replay re-opens a failed order

    def columns(self) -> dict[str, Any]:
        values = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "clear_failure_reason" and getattr(self, f.name) is not None
        }
        if self.clear_failure_reason:
            values["failure_reason"] = None
        return values


@dataclass(frozen=True)
class Change:
    """One step, ready to store: the new status (None: unchanged), columns and event data."""

    status: OrderStatus | None
    patch: OrderPatch
    data: dict[str, Any]


def describe(request: TransitionRequest) -> Change:
    """The row change and event data of the step `request` reports."""
    patch, data = OrderPatch(), dict[str, Any]()
    match request.step:
        case RoutingStarted(attempt=attempt):
            data = {"attempt": attempt}
        case Routed() as routed:
            quotes = [quote_view(q, routed.decimals_in, routed.decimals_out) for q in routed.quotes]
            route = route_view(routed.route, routed.decimals_in, routed.decimals_out)
            minimum_text = format_amount(routed.route.min_amount_out, routed.decimals_out)
            patch = OrderPatch(
                quotes=quotes,
                selected_dex=routed.route.selected_dex,
                route=route,
                min_amount_out=Decimal(minimum_text),
            )
            data = {
                "attempt": routed.attempt,
                "quotes": quotes,
                "selected_dex": routed.route.selected_dex,
                "route": route,
                "expected_amount_out": format_amount(routed.route.expected_amount_out, routed.decimals_out),
                "min_amount_out": minimum_text,
            }
        case Submitted(tx_hash=tx_hash, attempt=attempt):
            patch = OrderPatch(tx_hash=tx_hash, attempts=attempt)
            data = {"tx_hash": tx_hash, "attempt": attempt}
        case Confirmed() as confirmed:
            amount_out = format_amount(confirmed.amount_out, confirmed.decimals_out)
            price = format_price(
                from_base_units(confirmed.amount_out, confirmed.decimals_out)
                / from_base_units(confirmed.amount_in, confirmed.decimals_in)
            )
            fills = [_leg_view(leg, confirmed.decimals_in, confirmed.decimals_out) for leg in confirmed.legs]
            minimum = (
                Decimal(format_amount(confirmed.min_amount_out, confirmed.decimals_out))
                if confirmed.min_amount_out is not None
                else None
            )
            patch = OrderPatch(
                tx_hash=confirmed.tx_hash,
                amount_out=Decimal(amount_out),
                executed_price=Decimal(price),
                attempts=confirmed.attempts,
                route=fills or None,
                selected_dex=(fills[0]["dex"] if len({f["dex"] for f in fills}) == 1 else "split")
                if fills
                else None,
                min_amount_out=minimum,
                amount_in_filled=from_base_units(confirmed.amount_in, confirmed.decimals_in),
                execution=execution_view(
                    confirmed,
                    [_fill(confirmed, leg, fill) for leg, fill in zip(confirmed.legs, fills, strict=True)],
                ),
            )
            data = {"tx_hash": confirmed.tx_hash, "executed_price": price, "amount_out": amount_out}
            if fills:
                data["fills"] = fills
            if patch.execution is not None:
                data.update(patch.execution)  # the fill report, in the CONFIRMED event too
        case Failed(reason=reason, attempts=attempts):
            patch = OrderPatch(failure_reason=reason, attempts=attempts)
            data = {"reason": reason}
        case Waiting() as waiting:
            pair = f"{waiting.token_in}/{waiting.token_out}"
            awaited: dict[str, Any]
            match waiting.kind:
                case WaitKind.LIMIT_PRICE:
                    awaited = {"limit_price": waiting.limit_price, "pair": pair}
                case WaitKind.TRIGGER_PRICE:
                    # (a WAITING event of before order types were recorded: a stop)
                    falls = waiting.order_type is None or kind_of(waiting.order_type).fires is Direction.FALLS
                    awaited = {
                        "trigger_price": waiting.trigger_price,
                        "when": "price falls to or below" if falls else "price rises to or above",
                        "pair": pair,
                    }
                case WaitKind.TRAILING:
                    awaited = {
                        "trailing_bps": waiting.trailing_bps,
                        "trigger_price": waiting.trigger_price,
                        "when": f"price falls {waiting.trailing_bps} bps below the best price seen",
                        "pair": pair,
                    }
                case _:
                    awaited = {"pool_open": waiting.token_out, "pair": pair}
            data = {"waiting_for": awaited, "expires_at": format_epoch(waiting.expires_at)}
        case Ended(reason=reason):
            data = {"reason": reason}
        case Reopened(run=run):
            patch = OrderPatch(clear_failure_reason=True, attempts=0)
            data = {"replay": {"run": run, "by": "operator"}}
        case RetryScheduled() as retry:
            data = {
                "retry": {
                    "activity": retry.activity,
                    "attempt": retry.attempt,
                    "reason": retry.reason,
                    "backoff_ms": retry.backoff_ms,
                }
            }
    return Change(request.status, patch, data)


def _decimals(symbol: str, otherwise: int) -> int:
    """A token's decimals; the order's own when this process has not seen it listed (a
    sniper's token is only ever the order's token_out)."""
    token = find_token(symbol)
    return token.decimals if token is not None else otherwise


def _fill(confirmed: Confirmed, leg: RouteLeg, fill: dict[str, Any]) -> dict[str, Any]:
    return {
        "dex": leg.dex,
        "pool": leg.pool,
        "token_in": leg.token_in or confirmed.token_in,
        "token_out": leg.token_out or confirmed.token_out,
        "amount_in": fill["amount_in"],
        "amount_out": fill["amount_out"],
    }


def quote_view(quote: QuoteResult, decimals_in: int, decimals_out: int) -> dict[str, Any]:
    amount_out = from_base_units(quote.amount_out, decimals_out)
    return {
        "dex": quote.dex,
        "amount_out": format_amount(quote.amount_out, decimals_out),
        "price": format_price(amount_out / from_base_units(quote.amount_in, decimals_in)),
        "min_amount_out": format_amount(quote.min_amount_out, decimals_out),
        "fee_bps": quote.fee_bps,
        "price_impact_bps": quote.price_impact_bps,
        "slot": quote.slot,
    }


def route_view(decision: RouteDecision, decimals_in: int, decimals_out: int) -> list[dict[str, Any]]:
    """The route leg by leg; a multi-hop leg names its pair, hop, pool and share."""
    return [_leg_view(leg, decimals_in, decimals_out) for leg in decision.legs]


def _leg_view(leg: RouteLeg, decimals_in: int, decimals_out: int) -> dict[str, Any]:
    if leg.token_in is None or leg.token_out is None:  # a direct route of earlier versions
        return {
            "dex": leg.dex,
            "amount_in": format_amount(leg.amount_in, decimals_in),
            "amount_out": format_amount(leg.amount_out, decimals_out),
        }
    return {
        "dex": leg.dex,
        "pool": leg.pool,
        "hop": leg.hop,
        "token_in": leg.token_in,
        "token_out": leg.token_out,
        "amount_in": format_amount(leg.amount_in, _decimals(leg.token_in, decimals_in)),
        "amount_out": format_amount(leg.amount_out, _decimals(leg.token_out, decimals_out)),
        "fee_amount": format_amount(leg.fee_amount, _decimals(leg.token_in, decimals_in)),
        "percent": leg.share_bps / 100,
    }
