"""Prometheus metrics exposed at /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ORDERS_CREATED = Counter("order_engine_orders_created_total", "Orders accepted", ["type"])
WEBSOCKET_CONNECTIONS = Gauge("order_engine_websocket_connections", "Open order WebSockets")
