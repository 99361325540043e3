"""An order's history as a terminal shows it (`order-engine orders show`)."""

from __future__ import annotations

from typing import Any

from core.formatting import format_decimal
from orders.schemas import EventView, FailureView
from orders.service import OrderHistory, merge_timeline

# What a timeline line shows of an event's data, in this order.
SHOWN = (
    "selected_dex",
    "min_amount_out",
    "tx_hash",
    "executed_price",
    "amount_out",
    "reason",
    "waiting_for",
    "replay",
)


def describe_history(history: OrderHistory) -> str:
    order = history.order
    lines = [
        f"{order.id}  {order.type} {format_decimal(order.amount)} {order.token_in} → {order.token_out}  [{order.status}]",
        f"  workflow: {history.workflow}   tx: {order.tx_hash or '-'}   attempts: {order.attempts}",
        f"  history: {history.history}",
    ]
    if order.landing is not None:
        lines.append(f"  landing: {_landing(order.landing)}")
    if order.execution is not None:
        lines += [f"  {line}" for line in _report(order.execution)]
    for item in merge_timeline(history.events, history.failures):
        lines.append(f"  {item.at[11:23]}  {_line(item)}")
    return "\n".join(lines)


def _landing(landing: dict[str, Any]) -> str:
    tip = f", tip {landing['tip_lamports']} lamports" if landing.get("tip_lamports") else ""
    return f"priority fee {landing['priority_fee']}{tip}, simulate {landing['simulate']}"


def _report(execution: dict[str, Any]) -> list[str]:
    """The fill report: fills, fees to the lamport, compute units, slots, slippage."""
    fees = execution["fees"]
    lines = [
        f"fill: {fill['amount_in']} {fill['token_in']} → {fill['amount_out']} {fill['token_out']} on {fill['pool']}"
        for fill in execution["fills"]
    ]
    lines += [
        f"fees: {fees['total_sol']} SOL = {fees['network_lamports']} network + {fees['priority_lamports']} "
        f"priority + {fees['tip_lamports']} tip lamports",
        f"compute: {execution['compute_units_consumed']} of {execution['compute_unit_limit']} CU "
        f"at {execution['micro_lamports_per_cu']} µlamports/CU;  slots: sent {execution['sent_slot']}, "
        f"landed {execution['landed_slot']}",
        f"expected {execution['expected_amount_out']}, realized slippage {execution['realized_slippage_bps']} bps"
        f"{', SANDWICHED' if execution['sandwiched'] else ''}",
    ]
    return lines


def _line(item: EventView | FailureView) -> str:
    if isinstance(item, FailureView):
        paid = f" (stage {item.stage}, paid {item.fee_lamports} lamports)" if item.stage else ""
        return f"  ✗  {item.activity} attempt {item.attempt}: {item.reason}{paid}"
    return f"#{item.seq:<3} {item.status:10} {describe_data(item.data)}"


def describe_data(data: dict[str, Any]) -> str:
    if "retry" in data:
        retry = data["retry"]
        return f"retry of {retry['activity']} (attempt {retry['attempt']}) in {retry['backoff_ms']} ms: {retry['reason']}"
    return "  ".join(f"{k}={data[k]}" for k in SHOWN if k in data)
