"""Waiting stop-loss and trailing-stop orders beside running TWAPs (issue 17's figures):
how much the market watcher's tick costs with them waiting, what the worker spends while
nothing moves (the TWAPs sit on durable timers), and how long a price move takes to
start the order it triggers (move → ROUTING)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from decimal import Decimal

import httpx

from bench.cpu import CpuMeter
from bench.engine import ENGINE, http_client
from bench.report import progress
from bench.sections import Section, Workbench
from bench.stats import Figure, percentile
from bench.waiting import PLACE_IN_FLIGHT, TickTimes, time_watcher_ticks

AMOUNT = "0.1"
IDLE_S = 10
MOVES = 5


@dataclass(frozen=True)
class ConditionalResult:
    placed: int
    twaps_running: int
    ticks: TickTimes
    worker_cores_idle: float
    trigger_delays_s: list[float]
    errors: list[str]

    @property
    def delay_p50_s(self) -> float:
        return percentile(self.trigger_delays_s, 50)


async def run_conditional(
    api_url: str,
    key: str,
    twap_key: str,
    database_url: str,
    count: int,
    twaps: int,
    worker_pid: int,
) -> ConditionalResult:
    """`key` places the waiting orders (an operator's: no open-order cap), `twap_key`
    (another owner's) the TWAPs."""
    errors: list[str] = []
    async with http_client(api_url, key) as http, http_client(api_url, twap_key) as twap_http:
        price = await _price(http)
        bodies: list[dict[str, object]] = [
            {"type": "stop_loss", "trigger_price": f"{price / 2:.2f}"}
            if n % 2 == 0
            else {"type": "trailing_stop", "trailing_bps": 5000}
            for n in range(count)
        ]
        placed = await _place_all(http, bodies, errors)
        strategies = await _start_twaps(twap_http, twaps, errors)
        running = await _running(twap_http, strategies)
        ticks = await time_watcher_ticks(database_url, 20)
        meter = CpuMeter({"worker": worker_pid})
        meter.start()
        await asyncio.sleep(IDLE_S)
        idle = meter.stop().get("worker", float("nan"))
        delays = []
        for _ in range(MOVES):
            delay = await _trigger_delay(http, errors)
            if delay is not None:
                delays.append(delay)
        await _cancel_all(http, placed)
        await _cancel_all(twap_http, strategies, "/strategies/{}/cancel")
    return ConditionalResult(len(placed), running, ticks, idle, delays, errors)


async def _start_twaps(http: httpx.AsyncClient, count: int, errors: list[str]) -> list[str]:
    """TWAPs whose first slice executes at once and whose second waits an hour."""
    gate = asyncio.Semaphore(PLACE_IN_FLIGHT)
    started: list[str] = []

    async def one() -> None:
        async with gate:
            answer = await http.post(
                "/strategies",
                json={
                    "type": "twap",
                    "token_in": "SOL",
                    "token_out": "USDC",
                    "amount": "0.02",
                    "slices": 2,
                    "interval_s": 3600,
                    "slippage_bps": 500,
                },
            )
        if answer.status_code == 202:
            started.append(answer.json()["strategy_id"])
        else:
            errors.append(f"POST /strategies answered {answer.status_code}: {answer.text[:120]}")

    await asyncio.gather(*(one() for _ in range(count)))
    return started


async def _running(http: httpx.AsyncClient, strategy_ids: list[str]) -> int:
    """How many are RUNNING with their first slice executed, its second on its timer
    (within 60 s): from then on the worker has nothing to do for them."""
    waiting = set(strategy_ids)
    deadline = time.monotonic() + 60
    while waiting and time.monotonic() < deadline:
        for strategy_id in list(waiting):
            strategy = (await http.get(f"/strategies/{strategy_id}")).json()
            progress = strategy["progress"]
            if (
                strategy["status"] == "RUNNING"
                and progress["orders_confirmed"] + progress["orders_failed"] >= 1
            ):
                waiting.discard(strategy_id)
        await asyncio.sleep(0.5)
    return len(strategy_ids) - len(waiting)


async def _price(http: httpx.AsyncClient) -> Decimal:
    quote = (
        await http.post("/quotes", json={"token_in": "SOL", "token_out": "USDC", "amount": AMOUNT})
    ).json()
    return Decimal(quote["price"])


async def _place_all(
    http: httpx.AsyncClient, bodies: list[dict[str, object]], errors: list[str]
) -> list[str]:
    gate = asyncio.Semaphore(PLACE_IN_FLIGHT)
    placed: list[str] = []

    async def one(body: dict[str, object]) -> None:
        async with gate:
            answer = await http.post(
                "/orders",
                json={"token_in": "SOL", "token_out": "USDC", "amount": AMOUNT, "expires_in_s": 3600, **body},
            )
        if answer.status_code == 202:
            placed.append(answer.json()["order_id"])
        else:
            errors.append(f"POST /orders answered {answer.status_code}: {answer.text[:120]}")

    await asyncio.gather(*(one(body) for body in bodies))
    return placed


async def _trigger_delay(http: httpx.AsyncClient, errors: list[str]) -> float | None:
    """A stop 1 % under the price, then a 3 % fall: seconds until the order is ROUTING."""
    price = await _price(http)
    answer = await http.post(
        "/orders",
        json={
            "type": "stop_loss",
            "token_in": "SOL",
            "token_out": "USDC",
            "amount": AMOUNT,
            "trigger_price": f"{price * Decimal('0.99'):.4f}",
            "slippage_bps": 500,
        },
    )
    if answer.status_code != 202:
        errors.append(f"stop: {answer.status_code} {answer.text[:120]}")
        return None
    order_id = answer.json()["order_id"]
    while (await http.get(f"/orders/{order_id}")).json()["status"] != "WAITING":
        await asyncio.sleep(0.02)
    moved = time.monotonic()
    await http.post("/sim/price", json={"pair": "SOL/USDC", "move_bps": -300})
    try:
        async with asyncio.timeout(30):
            while (await http.get(f"/orders/{order_id}")).json()["status"] in ("WAITING", "PENDING"):
                await asyncio.sleep(0.01)
    except TimeoutError:
        errors.append(f"{order_id} did not fire within 30 s")
        return None
    delay = time.monotonic() - moved
    await http.post("/sim/price", json={"pair": "SOL/USDC", "move_bps": 300})
    return delay


async def _cancel_all(http: httpx.AsyncClient, ids: list[str], path: str = "/orders/{}/cancel") -> None:
    gate = asyncio.Semaphore(PLACE_IN_FLIGHT)

    async def cancel(one_id: str) -> None:
        async with gate:
            await http.post(path.format(one_id))

    await asyncio.gather(*(cancel(one_id) for one_id in ids))


CONDITIONAL_ORDERS = 1000
CONDITIONAL_TWAPS = 100
CONDITIONAL_NEEDS_S = 80
CONDITIONAL = (
    f"{CONDITIONAL_ORDERS} waiting stop-loss and trailing-stop orders, {CONDITIONAL_TWAPS} running TWAPs"
)


async def _run_conditional_section(workbench: Workbench) -> list[Figure]:
    progress(
        f"conditional: {CONDITIONAL_ORDERS} stop and trailing orders waiting, {CONDITIONAL_TWAPS} TWAPs running …"
    )
    engine = workbench.engine
    conditional = await run_conditional(
        engine.api_url,
        engine.operator_key(),
        engine.new_key("twap-bench"),
        workbench.urls.database_url,
        CONDITIONAL_ORDERS,
        CONDITIONAL_TWAPS,
        engine.pids()["worker"],
    )
    workbench.notes += [f"{CONDITIONAL}: {error}" for error in conditional.errors[:5]]
    return [
        Figure(CONDITIONAL, "placed", f"{conditional.placed}/{CONDITIONAL_ORDERS}"),
        Figure(CONDITIONAL, "TWAPs running", f"{conditional.twaps_running}/{CONDITIONAL_TWAPS}"),
        Figure(CONDITIONAL, "watcher tick p50", conditional.ticks.p50_ms, "ms"),
        Figure(CONDITIONAL, "watcher tick p99", conditional.ticks.p99_ms, "ms"),
        Figure(CONDITIONAL, "worker cpu, idle", conditional.worker_cores_idle, "cores"),
        Figure(
            CONDITIONAL,
            "price move → triggered order ROUTING, p50",
            conditional.delay_p50_s * 1000,
            "ms",
            note=f"{len(conditional.trigger_delays_s)} moves; max {max(conditional.trigger_delays_s, default=0) * 1000:.0f} ms",
        ),
    ]


CONDITIONAL_SECTION = Section(
    name="conditional",
    tables=(CONDITIONAL,),
    needs_s=CONDITIONAL_NEEDS_S,
    run=_run_conditional_section,
    engine=ENGINE,
)
