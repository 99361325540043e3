"""Temporal names shared by the API, the workers and the operator CLI, in one place."""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.client import Client, Interceptor
from temporalio.common import Priority, SearchAttributeKey
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

# Workflow tasks and every step after admission, as local activities: only `worker`
# processes poll it, so chain effects never run in an API process.
ORDERS_TASK_QUEUE = "orders"
# The one rate-limited step: admission to execution. The server enforces
# max_task_queue_activities_per_second across every worker polling this queue.
ADMISSION_TASK_QUEUE = "orders-admission"
# The market's loops; build, submit and confirm of workflows started before they
# became local activities.
EXECUTION_TASK_QUEUE = "orders-execution"

ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")
ORDER_TYPE = SearchAttributeKey.for_keyword("OrderType")
SELECTED_DEX = SearchAttributeKey.for_keyword("SelectedDex")
TOKEN_PAIR = SearchAttributeKey.for_keyword("TokenPair")
SEARCH_ATTRIBUTE_KEYS = (ORDER_STATUS, ORDER_TYPE, SELECTED_DEX, TOKEN_PAIR)


async def connect_temporal(
    address: str, namespace: str, metrics_address: str = "", interceptors: Sequence[Interceptor] = ()
) -> Client:
    """The process's one client. With `metrics_address` (host:port), the SDK's own metrics
    (task latencies, slots, polls, …) are served for Prometheus at http://host:port/metrics."""
    runtime = None
    if metrics_address:
        runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=metrics_address)))
    return await Client.connect(address, namespace=namespace, runtime=runtime, interceptors=interceptors)


async def register_search_attributes(client: Client) -> None:
    """Add whichever of SEARCH_ATTRIBUTE_KEYS the namespace lacks (`temporal setup`;
    the embedded dev server too, whose database may predate one of them)."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest

    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = {
        key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        for key in SEARCH_ATTRIBUTE_KEYS
        if key.name not in existing.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )


FAIRNESS_KEY_MAX = 64  # bytes; owner names are at most 64 ASCII characters


def owner_priority(owner: str) -> Priority:
    """Task Queue Fairness: an owner's workflows and activities are dispatched round-robin
    with every other owner's, so one owner's backlog cannot hold the others back."""
    return Priority(fairness_key=owner[:FAIRNESS_KEY_MAX])
