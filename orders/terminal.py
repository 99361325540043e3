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
    for item in merge_timeline(history.events, history.failures):
        lines.append(f"  {item.at[11:23]}  {_line(item)}")
    return "\n".join(lines)


def _line(item: EventView | FailureView) -> str:
    if isinstance(item, FailureView):
        return f"  ✗  {item.activity} attempt {item.attempt}: {item.reason}"
    return f"#{item.seq:<3} {item.status:10} {describe_data(item.data)}"


def describe_data(data: dict[str, Any]) -> str:
    if "retry" in data:
        retry = data["retry"]
        return f"retry of {retry['activity']} (attempt {retry['attempt']}) in {retry['backoff_ms']} ms: {retry['reason']}"
    return "  ".join(f"{k}={data[k]}" for k in SHOWN if k in data)
