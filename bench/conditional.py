"""Waiting stop-loss and trailing-stop orders beside running TWAPs (issue 17's figures):
how much the market watcher's tick costs with them waiting, what the worker spends while
nothing moves (the TWAPs sit on durable timers), and how long a price move takes to
start the order it triggers (move → ROUTING)."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from bench.cpu import CpuMeter
from bench.engine import ENGINE, http_client
from bench.report import progress
from bench.sections import Section, Workbench
from bench.stats import Figure, percentile
from bench.waiting import PLACE_IN_FLIGHT, TickTimes, time_watcher_ticks

AMOUNT = "0.1"
QUOTE_STEP = 50  # undecided limits priced from one quote per this many
PLACE_WITHIN_S = 40  # the protective-order measurement stays bounded on a busy machine
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
    http: httpx.AsyncClient, bodies: list[dict[str, object]], errors: list[str], within_s: float | None = None
) -> list[str]:
    """Each body placed (`within_s`: those whose turn comes later are left out)."""
    gate = asyncio.Semaphore(PLACE_IN_FLIGHT)
    placed: list[str] = []
    deadline = time.monotonic() + within_s if within_s is not None else math.inf

    async def one(body: dict[str, object]) -> None:
        async with gate:
            if time.monotonic() > deadline:
                return
            answer = await http.post(
                "/orders",
                json={"token_in": "SOL", "token_out": "USDC", "amount": AMOUNT, "expires_in_s": 3600, **body},
            )
        if answer.status_code == 202:
            placed.append(answer.json()["order_id"])
        else:
            errors.append(f"POST /orders answered {answer.status_code}: {answer.text[:300]}")

    await asyncio.gather(*(one(body) for body in bodies))
    return placed


async def _trigger_delay(http: httpx.AsyncClient, errors: list[str]) -> float | None:
    """A stop 1 % under the price on the SOL/USDC pools, then a 3 % fall: seconds until
    the order is ROUTING."""
    price = await _price(http)
    stop = {
        "type": "stop_loss",
        "token_in": "SOL",
        "token_out": "USDC",
        "amount": AMOUNT,
        "trigger_price": f"{price * Decimal('0.99'):.4f}",
        "max_hops": 1,  # the move is SOL/USDC's alone: through USDT the price would hold
        "slippage_bps": 500,
    }
    return await _seconds_to_fire(http, http, stop, errors)


async def _seconds_to_fire(
    http: httpx.AsyncClient, operator: httpx.AsyncClient, body: dict[str, Any], errors: list[str]
) -> float | None:
    """Place a protective order (`http`), wait until it is WAITING, make SOL/USDC fall 3 %
    (`operator`): seconds until it is ROUTING. The price is put back either way."""
    answer = await http.post("/orders", json=body)
    if answer.status_code != 202:
        errors.append(f"{body['type']}: {answer.status_code} {answer.text[:120]}")
        return None
    order_id = answer.json()["order_id"]
    while (await http.get(f"/orders/{order_id}")).json()["status"] != "WAITING":
        await asyncio.sleep(0.02)
    moved = time.monotonic()
    await operator.post("/sim/price", json={"pair": "SOL/USDC", "move_bps": -300})
    try:
        async with asyncio.timeout(30):
            while (await http.get(f"/orders/{order_id}")).json()["status"] in ("WAITING", "PENDING"):
                await asyncio.sleep(0.01)
    except TimeoutError:
        errors.append(f"{order_id} did not fire within 30 s")
        await http.post(f"/orders/{order_id}/cancel")
        return None
    finally:
        await operator.post("/sim/price", json={"pair": "SOL/USDC", "move_bps": 300})
    return time.monotonic() - moved


async def _cancel_all(http: httpx.AsyncClient, ids: list[str], path: str = "/orders/{}/cancel") -> None:
    gate = asyncio.Semaphore(PLACE_IN_FLIGHT)

    async def cancel(one_id: str) -> None:
        async with gate:
            await http.post(path.format(one_id))

    await asyncio.gather(*(cancel(one_id) for one_id in ids))


@dataclass(frozen=True)
class ProtectiveResult:
    """One owner's undecided limits waiting, another owner's protective order: how long
    a price move takes to trigger it (move → ROUTING)."""

    placed: int
    delays_s: list[float]
    errors: list[str]
    phases_s: dict[str, float]  # how long quoting, placing, waiting and the moves took

    @property
    def p50_s(self) -> float:
        return percentile(self.delays_s, 50)

    @property
    def p99_s(self) -> float:
        return percentile(self.delays_s, 99)


async def run_protective(api_url: str, key: str, other_key: str, count: int, moves: int) -> ProtectiveResult:
    """`key` (an operator's: no open-order cap) places `count` USDC → JUP limits, each set
    between what its own amount fetches and what the first unit does: no bound or bucket
    decides them, each costs a route of its own every tick. Then, `moves` times, another
    owner's trailing stop on SOL/USDC and a 3 % fall: seconds until it is ROUTING."""
    errors: list[str] = []
    phases: dict[str, float] = {}
    async with http_client(api_url, key) as http, http_client(api_url, other_key) as other:
        started = time.monotonic()
        bodies = await _undecided_limits(http, count, errors)
        phases["quote"], started = time.monotonic() - started, time.monotonic()
        placed = await _place_all(http, bodies, errors, within_s=PLACE_WITHIN_S)
        phases["place"], started = time.monotonic() - started, time.monotonic()
        await _all_waiting(http, placed, errors)
        phases["wait"], started = time.monotonic() - started, time.monotonic()
        delays = []
        for _ in range(moves):
            delay = await _trailing_delay(other, http, errors)
            if delay is not None:
                delays.append(delay)
        phases["moves"] = time.monotonic() - started
        await _cancel_all(http, placed)
    return ProtectiveResult(len(placed), delays, errors, phases)


async def _undecided_limits(
    http: httpx.AsyncClient, count: int, errors: list[str]
) -> list[dict[str, object]]:
    """Price per unit falls as the amount grows: a limit between the first unit's price
    and that of an amount a little smaller than the order's is above what the order's own
    amount fetches. So one quote per QUOTE_STEP orders, not one each."""

    async def jup_per_usdc(amount: Decimal) -> Decimal | None:
        answer = await http.post(
            "/quotes", json={"token_in": "USDC", "token_out": "JUP", "amount": str(amount)}
        )
        if answer.status_code != 200:
            errors.append(f"POST /quotes answered {answer.status_code}: {answer.text[:120]}")
            return None
        return Decimal(answer.json()["price"])

    first_unit = await jup_per_usdc(Decimal(1))
    amounts = [Decimal(1000 + 2 * n) for n in range(count)]
    steps = amounts[::QUOTE_STEP]
    prices = [await jup_per_usdc(amount) for amount in steps]
    if first_unit is None:
        return []
    bodies: list[dict[str, object]] = []
    for n, amount in enumerate(amounts):
        price = prices[n // QUOTE_STEP]
        if price is None:
            continue
        limit = ((price + first_unit) / 2).quantize(Decimal("1e-12"))
        bodies.append(
            {
                "type": "limit",
                "token_in": "USDC",
                "token_out": "JUP",
                "amount": str(amount),
                "limit_price": str(limit),
            }
        )
    return bodies


async def _all_waiting(http: httpx.AsyncClient, order_ids: list[str], errors: list[str]) -> None:
    gate = asyncio.Semaphore(PLACE_IN_FLIGHT)
    deadline = time.monotonic() + 20

    async def waiting(order_id: str) -> bool:
        while time.monotonic() < deadline:
            async with gate:
                status = (await http.get(f"/orders/{order_id}")).json()["status"]
            if status == "WAITING":
                return True
            await asyncio.sleep(0.2)
        return False

    late = sum(not ok for ok in await asyncio.gather(*(waiting(order_id) for order_id in order_ids)))
    if late:
        errors.append(f"{late} limits not WAITING within 20 s")


async def _trailing_delay(
    http: httpx.AsyncClient, operator: httpx.AsyncClient, errors: list[str]
) -> float | None:
    """A trailing stop 1 % under its best on the SOL/USDC pools (the direct pair: the move
    is theirs alone), then a 3 % fall: seconds until the order is ROUTING."""
    trailing = {
        "type": "trailing_stop",
        "token_in": "SOL",
        "token_out": "USDC",
        "amount": AMOUNT,
        "trailing_bps": 100,
        "max_hops": 1,
        "slippage_bps": 500,
    }
    return await _seconds_to_fire(http, operator, trailing, errors)


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


# One owner's undecided limits beside another owner's trailing stop (issue 21).
PROTECTIVE_LIMITS, PROTECTIVE_MOVES = 1000, 7
PROTECTIVE = f"{PROTECTIVE_LIMITS} undecided limits of one owner, a trailing stop of another"
PROTECTIVE_NEEDS_S = 60


async def _run_protective_section(workbench: Workbench) -> list[Figure]:
    progress(f"protective: {PROTECTIVE_LIMITS} undecided limits of one owner, a trailing stop of another …")
    engine = workbench.engine
    protective = await run_protective(
        engine.api_url,
        engine.operator_key(),
        engine.new_key("protective-bench"),
        PROTECTIVE_LIMITS,
        PROTECTIVE_MOVES,
    )
    workbench.notes += [f"{PROTECTIVE}: {error}" for error in protective.errors[:5]]
    return [
        Figure(PROTECTIVE, "placed", f"{protective.placed}/{PROTECTIVE_LIMITS}"),
        Figure(PROTECTIVE, "price move → trailing stop ROUTING, p50", protective.p50_s * 1000, "ms"),
        Figure(
            PROTECTIVE,
            "price move → trailing stop ROUTING, p99",
            protective.p99_s * 1000,
            "ms",
            note=f"{len(protective.delays_s)} moves",
        ),
    ]


PROTECTIVE_SECTION = Section(
    name="protective",
    tables=(PROTECTIVE,),
    needs_s=PROTECTIVE_NEEDS_S,
    run=_run_protective_section,
    engine=ENGINE,
)
