"""Streaming: event delivery with many subscribers, and the memory idle WebSockets cost.

Delivery, twice, each with SUBSCRIBERS_PER_ORDER sockets subscribed to each of the
waiting orders (1 000 in all):
- all at once: limit orders, then one price move triggers them all, so the worker
  executes every order at the same moment and every event fans out meanwhile;
- one at a time: sniper orders for tokens not listed yet, then their pools open one
  after another, so one order executes at a time while all 1 000 sockets stay open.
Latency is the event's server-stamped `at` (its commit) → the frame read here; only live
frames count (not the replayed ones).

Idle: raw sockets that complete the WebSocket handshake and then only hold the
connection (cheap for the client), subscribed to waiting orders; the API process's RSS
is read before and after.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import httpx
from websockets.asyncio.client import ClientConnection, connect

from bench.cpu import CpuMeter, cpu_figures
from bench.engine import ENGINE, TERMINAL, http_client
from bench.report import progress
from bench.sections import Section, Workbench
from bench.stats import Figure, percentile
from bench.waiting import place_limit_orders, rss_mb

SUBSCRIBERS_PER_ORDER = 20
DELIVERY_TIMEOUT_S = 90
ONE_ORDER_TIMEOUT_S = 10  # one at a time: a pool opening → its order's terminal frame
OPEN_IN_FLIGHT = 100
STREAM_ORDERS = 50  # × SUBSCRIBERS_PER_ORDER subscribed WebSockets
ONE_AT_A_TIME_NEEDS_S = 60  # STREAM_ORDERS sniper orders placed, subscribed, run in turn
IDLE_WEBSOCKETS = 5000
IDLE_OWN_ORDERS = 2000  # limit orders placed for them when no earlier section left any waiting
STREAMING = "streaming, 50 orders at once"
STREAMING_ONE = "streaming, one order at a time"
IDLE = "idle WebSockets"


@dataclass(frozen=True)
class DeliveryResult:
    subscribers: int
    orders: int
    live_frames: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    incomplete: int  # subscriptions that did not see their order's terminal event
    errors: list[str]
    burst_s: float  # the price move → the last subscription's terminal frame
    cores: dict[str, float]  # what each metered process used meanwhile


@dataclass(frozen=True)
class IdleResult:
    connections: int
    rss_before_mb: float
    rss_after_mb: float
    errors: list[str]

    @property
    def per_connection_kb(self) -> float:
        return (self.rss_after_mb - self.rss_before_mb) * 1024 / self.connections if self.connections else 0


async def _sol_usdc_mid(http: httpx.AsyncClient) -> Decimal:
    items = (await http.get("/markets")).json()["items"]
    return max(Decimal(m["mid_price"]) for m in items if m["pair"] == "SOL/USDC")


async def _until_waiting(http: httpx.AsyncClient, order_id: str) -> None:
    """Poll the order (the API has no "tell me when" for a client of its own)."""
    status = ""
    while status != "WAITING":
        if status:
            await asyncio.sleep(0.05)
        status = (await http.get(f"/orders/{order_id}")).json()["status"]


async def _follow(ws: ClientConnection, samples: list[float]) -> bool:
    """Read one subscription to its end; True if the terminal event came."""
    snapshot_seq = 0
    async for raw in ws:
        frame = json.loads(raw)
        if frame["type"] == "SNAPSHOT":
            snapshot_seq = frame["seq"]
        elif frame["type"] == "EVENT":
            if frame["seq"] > snapshot_seq:  # live, not replayed
                samples.append(time.time() - datetime.fromisoformat(frame["at"]).timestamp())
            if frame["status"] in TERMINAL:
                return True
    return False


async def _subscribe_all(base_url: str, api_key: str, order_ids: list[str]) -> list[list[ClientConnection]]:
    """SUBSCRIBERS_PER_ORDER subscriptions to each order, each past its SNAPSHOT."""
    auth = {"Authorization": f"Bearer {api_key}"}
    ws_base = base_url.replace("http://", "ws://", 1)
    gate = asyncio.Semaphore(OPEN_IN_FLIGHT)

    async def subscribe(order_id: str) -> ClientConnection:
        async with gate:
            ws = await connect(
                f"{ws_base}/ws/orders?orderId={order_id}",
                proxy=None,
                additional_headers=auth,
                max_queue=None,
            )
            await ws.recv()  # the SNAPSHOT: subscribed
            return ws

    return [
        list(await asyncio.gather(*(subscribe(order_id) for _ in range(SUBSCRIBERS_PER_ORDER))))
        for order_id in order_ids
    ]


def _result(
    orders: int,
    sockets: int,
    samples: list[float],
    finished: int,
    errors: list[str],
    burst_s: float,
    cores: dict[str, float],
) -> DeliveryResult:
    latencies = [s * 1000 for s in samples]
    return DeliveryResult(
        subscribers=sockets,
        orders=orders,
        live_frames=len(samples),
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        max_ms=max(latencies, default=float("nan")),
        incomplete=sockets - finished,
        errors=errors,
        burst_s=burst_s,
        cores=cores,
    )


async def delivery_one_at_a_time(
    base_url: str, api_key: str, orders: int, meter: CpuMeter | None = None
) -> DeliveryResult:
    """Sniper orders for `orders` unlisted tokens, all subscribed; then each token's pool
    opens once the previous order has ended, so one order executes at a time."""
    errors: list[str] = []
    tokens = [f"DLV{n:03d}" for n in range(orders)]
    async with http_client(base_url, api_key) as http:
        order_ids = []
        for token in tokens:
            body = {
                "type": "sniper",
                "token_in": "SOL",
                "token_out": token,
                "amount": "0.1",
                "slippage_bps": 300,
            }
            order_ids.append((await http.post("/orders", json=body)).json()["order_id"])
        async with asyncio.timeout(60):
            for order_id in order_ids:
                await _until_waiting(http, order_id)
        subscribed = await _subscribe_all(base_url, api_key, order_ids)
        samples: list[float] = []
        finished = 0
        if meter is not None:
            meter.start()
        started = time.perf_counter()
        for token, sockets in zip(tokens, subscribed, strict=True):
            followers = [asyncio.create_task(_follow(ws, samples)) for ws in sockets]
            pool = {
                "token": token,
                "dex": "raydium",
                "quote_token": "SOL",
                "liquidity": "1000",
                "activation_in_s": 0,
            }
            listed = await http.post("/sim/pools", json=pool)
            if listed.status_code != 201:
                errors.append(f"/sim/pools answered {listed.status_code}")
            done, pending = await asyncio.wait(followers, timeout=ONE_ORDER_TIMEOUT_S)
            for task in pending:
                task.cancel()
            finished += sum(1 for task in done if task.exception() is None and task.result())
        elapsed = time.perf_counter() - started
        cores = meter.stop() if meter is not None else {}
        all_sockets = [ws for sockets in subscribed for ws in sockets]
        await asyncio.gather(*(ws.close() for ws in all_sockets), return_exceptions=True)
    return _result(orders, len(all_sockets), samples, finished, errors, elapsed, cores)


async def delivery_with_subscribers(
    base_url: str, api_key: str, orders: int, meter: CpuMeter | None = None
) -> DeliveryResult:
    errors: list[str] = []
    async with http_client(base_url, api_key) as http:
        # Waiting: SOL must pay 1 % more USDC than now; a 3 % move triggers them all.
        limit = (await _sol_usdc_mid(http) * Decimal("1.01")).quantize(Decimal("0.01"))
        body = {
            "type": "limit",
            "token_in": "SOL",
            "token_out": "USDC",
            "amount": "0.1",
            "limit_price": str(limit),
        }
        order_ids = [(await http.post("/orders", json=body)).json()["order_id"] for _ in range(orders)]
        async with asyncio.timeout(60):
            for order_id in order_ids:
                await _until_waiting(http, order_id)

        sockets = [ws for group in await _subscribe_all(base_url, api_key, order_ids) for ws in group]
        samples: list[float] = []
        followers = [asyncio.create_task(_follow(ws, samples)) for ws in sockets]
        if meter is not None:
            meter.start()
        burst_started = time.perf_counter()
        moved = await http.post("/sim/price", json={"pair": "SOL/USDC", "move_bps": 300})
        if moved.status_code != 200:
            errors.append(f"/sim/price answered {moved.status_code}")
        done, pending = await asyncio.wait(followers, timeout=DELIVERY_TIMEOUT_S)
        burst_s = time.perf_counter() - burst_started
        cores = meter.stop() if meter is not None else {}
        for task in pending:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    finished = sum(1 for task in done if not task.cancelled() and task.exception() is None and task.result())
    return _result(orders, len(sockets), samples, finished, errors, burst_s, cores)


async def _open_idle(host: str, port: int, path: str) -> asyncio.StreamWriter:
    reader, writer = await asyncio.open_connection(host, port)
    nonce = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {nonce}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if b" 101 " not in head.split(b"\r\n")[0]:
        raise RuntimeError(head.split(b"\r\n")[0].decode())
    await reader.readexactly(2)  # the SNAPSHOT frame's header: the subscription is live
    return writer


async def idle_websockets(
    base_url: str, api_key: str, api_pid: int, order_ids: list[str], count: int
) -> IdleResult:
    """`count` idle subscriptions spread over `order_ids` (waiting orders), held while the
    API's RSS is read; closed again after."""
    host, port = base_url.removeprefix("http://").split(":")
    before = rss_mb(api_pid)
    writers: list[asyncio.StreamWriter] = []
    errors: list[str] = []
    gate = asyncio.Semaphore(OPEN_IN_FLIGHT)

    async def open_one(i: int) -> None:
        path = f"/ws/orders?orderId={order_ids[i % len(order_ids)]}&token={api_key}"
        async with gate:
            try:
                writers.append(await _open_idle(host, int(port), path))
            except (OSError, RuntimeError, asyncio.IncompleteReadError) as error:
                errors.append(f"{type(error).__name__}: {error}")

    await asyncio.gather(*(open_one(i) for i in range(count)))
    await asyncio.sleep(2)  # let the server finish sending snapshots before reading its memory
    after = rss_mb(api_pid)
    for writer in writers:
        writer.close()
    return IdleResult(len(writers), before, after, errors[:5])


async def _run_streaming(workbench: Workbench) -> list[Figure]:
    progress(
        f"streaming: {STREAM_ORDERS} limit orders × {SUBSCRIBERS_PER_ORDER} subscribers, one price move …"
    )
    engine = workbench.engine
    result = await delivery_with_subscribers(
        engine.api_url, engine.operator_key(), STREAM_ORDERS, workbench.meter()
    )
    return delivery_figures(
        STREAMING,
        result,
        workbench.notes,
        how="all orders triggered at once",
        took="burst: price move → last terminal frame",
    )


async def _run_one_at_a_time(workbench: Workbench) -> list[Figure]:
    progress(
        f"streaming: {STREAM_ORDERS} sniper orders × {SUBSCRIBERS_PER_ORDER} subscribers, one at a time …"
    )
    engine = workbench.engine
    result = await delivery_one_at_a_time(
        engine.api_url, engine.operator_key(), STREAM_ORDERS, workbench.meter()
    )
    return delivery_figures(
        STREAMING_ONE,
        result,
        workbench.notes,
        how="each pool opens after the last order ended",
        took="all orders in turn",
    )


def delivery_figures(
    section: str, result: DeliveryResult, notes: list[str], *, how: str, took: str
) -> list[Figure]:
    notes += [f"{section}: {error}" for error in result.errors]
    progress(f"{section}: delivery p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms")
    subscribers = STREAM_ORDERS * SUBSCRIBERS_PER_ORDER
    return [
        Figure(section, "subscribed WebSockets", f"{result.subscribers}/{subscribers}"),
        Figure(
            section,
            f"delivery p50, {result.subscribers} subscribed",
            result.p50_ms,
            "ms",
            note=f"event `at` → frame; {result.live_frames} live frames; {how}",
        ),
        Figure(section, "delivery p99", result.p99_ms, "ms", note="target ≤ 20 ms"),
        Figure(section, "delivery max", result.max_ms, "ms"),
        Figure(section, "subscriptions without their terminal event", result.incomplete),
        Figure(section, took, result.burst_s, "s"),
        *cpu_figures(section, result.cores, result.live_frames / result.burst_s, "live frame"),
    ]


async def _run_idle(workbench: Workbench) -> list[Figure]:
    engine = workbench.engine
    order_ids = workbench.waiting_order_ids
    if not order_ids:
        progress(f"streaming: placing {IDLE_OWN_ORDERS} limit orders far from their limit …")
        placement = await place_limit_orders(engine.api_url, engine.operator_key(), IDLE_OWN_ORDERS)
        order_ids = workbench.waiting_order_ids = placement.order_ids
        workbench.notes.append(f"{IDLE}: subscribed to {len(order_ids)} limit orders of their own")
    progress(f"streaming: {IDLE_WEBSOCKETS} idle WebSockets on the waiting orders …")
    idle = await idle_websockets(
        engine.api_url, engine.operator_key(), engine.pids()["api"], order_ids, IDLE_WEBSOCKETS
    )
    workbench.notes += [f"{IDLE}: {error}" for error in idle.errors]
    return [
        Figure(IDLE, "idle WebSockets open", f"{idle.connections}/{IDLE_WEBSOCKETS}"),
        Figure(
            IDLE,
            f"API rss with {idle.connections} idle WebSockets",
            idle.rss_after_mb,
            "MB",
            note=f"{idle.rss_before_mb:.0f} MB before; {idle.per_connection_kb:.1f} KB each; target < 500 MB",
        ),
    ]


STREAMING_SECTION = Section(
    name="streaming",
    tables=(STREAMING,),
    needs_s=60,
    run=_run_streaming,
    engine=ENGINE,
    parameters={
        "streaming": {
            "orders": STREAM_ORDERS,
            "subscribers_per_order": SUBSCRIBERS_PER_ORDER,
            "idle": IDLE_WEBSOCKETS,
        }
    },
)
# On the orders the waiting section left WAITING (its own if it did not run).
IDLE_SECTION = Section(name="idle", tables=(IDLE,), needs_s=45, run=_run_idle, engine=ENGINE)
STREAMING_ONE_SECTION = Section(
    name="streaming-one",
    tables=(STREAMING_ONE,),
    needs_s=ONE_AT_A_TIME_NEEDS_S,
    run=_run_one_at_a_time,
    engine=ENGINE,
)
