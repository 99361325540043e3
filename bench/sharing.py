"""Many owners on one engine (the "safe to share" targets):

- fair shares: one owner floods the rate-limited engine with hundreds of orders; how
  long another owner's market orders take, accepted → CONFIRMED;
- a bounded watcher: other owners' market orders one at a time, without and then with
  hundreds of large limit orders waiting that pass the quick price bound but can never
  fill; and how fast a limit order that becomes fillable fills;
- conservation: concurrent orders of one owner through two API processes, more than its
  wallet holds; what was accepted, refused, and how its balances moved.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from decimal import Decimal

import httpx

from bench.engine import ENGINE, ENGINE_SETTINGS, ORDER, TERMINAL, http_client, place_and_watch
from bench.report import progress
from bench.sections import EngineSpec, Section, Workbench
from bench.stats import Figure, percentile

FLOOD_IN_FLIGHT = 50
FLOOD, FLOOD_OTHERS = 300, 10
NEVER_FILLING, WATCHER_ORDERS = 300, 20
CONSERVATION_ORDERS, CONSERVATION_AMOUNT = 40, "300"
SHARING_NEEDS_S = 150
FAIR = f"fair shares: another owner behind a {FLOOD}-order flood"
WATCHER = f"{NEVER_FILLING} never-filling limit orders waiting"
CONSERVATION = f"wallet conservation: {CONSERVATION_ORDERS} orders at once on two APIs"
# At the spec's rate, with simulated latencies 0: only admission holds an order back.
FAIR_ENGINE = EngineSpec(
    "engine-fair",
    {
        **ENGINE_SETTINGS,
        "ORDER_ENGINE_ORDERS_PER_MINUTE": "100",
        "ORDER_ENGINE_MAX_CONCURRENT_ACTIVITIES": "10",
    },
)


@dataclass(frozen=True)
class FairShares:
    flood: int  # orders of the flooding owner, accepted before the others'
    fifo_wait_s: float  # what the last of them waits, first in first out, at the rate
    latencies_s: list[float]
    errors: list[str]

    @property
    def p50_s(self) -> float:
        return percentile(self.latencies_s, 50)

    @property
    def p99_s(self) -> float:
        return percentile(self.latencies_s, 99)


async def fair_shares(
    url: str, flooder_key: str, other_key: str, flood: int, others: int, per_minute: float
) -> FairShares:
    errors: list[str] = []
    gate = asyncio.Semaphore(FLOOD_IN_FLIGHT)
    async with http_client(url, flooder_key) as flooder:

        async def place() -> bool:
            async with gate:
                response = await flooder.post("/orders", json=ORDER)
            if response.status_code != 202:
                errors.append(f"flood: POST /orders answered {response.status_code}")
            return response.status_code == 202

        accepted = sum(await asyncio.gather(*(place() for _ in range(flood))))
    ws_base = url.replace("http://", "ws://")
    latencies: list[float] = []
    async with http_client(url, other_key) as other:
        for _ in range(others):  # one at a time, a second apart, behind the whole flood
            outcome = await place_and_watch(other, ws_base)
            if outcome.latency_s is not None:
                latencies.append(outcome.latency_s)
            else:
                errors.append(f"other owner: {outcome.error}")
            await asyncio.sleep(1)
    return FairShares(accepted, accepted / per_minute * 60, latencies, errors)


@dataclass(frozen=True)
class WatcherLoad:
    baseline_ms: list[float]
    with_waiting_ms: list[float]
    waiting: int
    fill_after_move_s: float | None
    errors: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return percentile(self.with_waiting_ms, 50) / percentile(self.baseline_ms, 50)


async def market_orders_one_at_a_time(url: str, key: str, count: int) -> tuple[list[float], list[str]]:
    ws_base = url.replace("http://", "ws://")
    latencies, errors = [], []
    async with http_client(url, key) as http:
        for _ in range(count):
            outcome = await place_and_watch(http, ws_base)
            if outcome.latency_s is not None:
                latencies.append(outcome.latency_s * 1000)
            else:
                errors.append(str(outcome.error))
    return latencies, errors


async def watcher_under_load(
    url: str, operator_key: str, other_key: str, waiting: int, orders: int
) -> WatcherLoad:
    baseline, errors = await market_orders_one_at_a_time(url, other_key, orders)
    async with http_client(url, operator_key) as ops:
        # Large orders whose limit sits just under the first unit's price: they pass the
        # quick bound, but their size can never fetch it.
        markets = (await ops.get("/markets")).json()["items"]
        mid = max(Decimal(m["mid_price"]) for m in markets if m["pair"] == "SOL/USDC")
        units = {"amount": "5000", "limit_price": str((mid * Decimal("0.9965")).quantize(Decimal("0.01")))}
        await ops.post("/sim/wallet", json={"token": "SOL", "amount": str(5000 * (waiting + 10))})
        gate = asyncio.Semaphore(FLOOD_IN_FLIGHT)

        async def place() -> None:
            async with gate:
                response = await ops.post("/orders", json={**ORDER, "type": "limit", **units})
            if response.status_code != 202:
                errors.append(f"waiting order: POST /orders answered {response.status_code}")

        await asyncio.gather(*(place() for _ in range(waiting)))
        deadline = time.monotonic() + 60
        while len(
            (await ops.get("/orders", params={"status": "WAITING", "limit": 200})).json()["items"]
        ) < min(waiting, 200):
            if time.monotonic() > deadline:
                errors.append("the waiting orders did not all reach WAITING in 60 s")
                break
            await asyncio.sleep(0.5)
        with_waiting, more_errors = await market_orders_one_at_a_time(url, other_key, orders)
        errors += more_errors
        fill_s = await limit_fill_after_move(ops, mid)
    return WatcherLoad(baseline, with_waiting, waiting, fill_s, errors)


async def limit_fill_after_move(ops: httpx.AsyncClient, mid: Decimal) -> float | None:
    """A small limit order 1 % above the price; the price moves 3 % up: seconds from the
    move to its CONFIRMED."""
    body = {
        **ORDER,
        "type": "limit",
        "amount": "1",
        "limit_price": str((mid * Decimal("1.01")).quantize(Decimal("0.01"))),
    }
    order_id = (await ops.post("/orders", json=body)).json()["order_id"]
    while (await ops.get(f"/orders/{order_id}")).json()["status"] != "WAITING":
        await asyncio.sleep(0.05)
    moved = time.monotonic()
    await ops.post("/sim/price", json={"pair": "SOL/USDC", "move_bps": 300})
    deadline = moved + 30
    while (status := (await ops.get(f"/orders/{order_id}")).json()["status"]) not in TERMINAL:
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.02)
    return time.monotonic() - moved if status == "CONFIRMED" else None


@dataclass(frozen=True)
class Conservation:
    asked: int
    accepted: int
    refused_insufficient: int
    confirmed: int
    failed: int
    sol_spent: Decimal  # total before − after
    sol_filled: Decimal  # Σ amount_in of CONFIRMED orders
    sol_fees: Decimal  # Σ fees: of CONFIRMED orders, and of attempts that landed and failed
    usdc_received: Decimal  # total after − before
    usdc_filled: Decimal  # Σ amount_out of CONFIRMED orders
    reserved_after: Decimal
    lowest_available: Decimal
    errors: list[str]


async def conservation(urls: list[str], key: str, count: int, amount: str) -> Conservation:
    clients = [http_client(url, key) for url in urls]
    errors: list[str] = []
    try:
        before = await _balances(clients[0])
        body = {**ORDER, "amount": amount, "slippage_bps": 500}
        answers = await asyncio.gather(
            *(clients[n % len(clients)].post("/orders", json=body) for n in range(count))
        )
        accepted = [a.json()["order_id"] for a in answers if a.status_code == 202]
        refused = sum(a.status_code == 422 and a.json().get("code") == "insufficient_funds" for a in answers)
        lowest = min(b["available"] for b in before.values())
        deadline = time.monotonic() + 300
        while True:
            now = await _balances(clients[-1])
            lowest = min(lowest, *(b["available"] for b in now.values()))
            orders = [(await clients[0].get(f"/orders/{oid}")).json() for oid in accepted]
            if all(o["status"] in TERMINAL for o in orders) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        after = await _balances(clients[0])
        failed_lamports = 0
        for order_id in accepted:
            timeline = (await clients[0].get(f"/orders/{order_id}/events")).json()["items"]
            failed_lamports += sum(i.get("fee_lamports", 0) for i in timeline if i["type"] == "FAILURE")
    finally:
        for client in clients:
            await client.aclose()
    confirmed = [o for o in orders if o["status"] == "CONFIRMED"]
    fees = sum((Decimal(o["fees"]["total_sol"]) for o in confirmed if o.get("fees")), Decimal(0))
    errors += [f"{o['order_id']} {o['status']}" for o in orders if o["status"] not in TERMINAL]
    return Conservation(
        asked=count,
        accepted=len(accepted),
        refused_insufficient=refused,
        confirmed=len(confirmed),
        failed=sum(o["status"] == "FAILED" for o in orders),
        sol_spent=before["SOL"]["total"] - after["SOL"]["total"],
        sol_filled=sum((Decimal(o["amount_in"]) for o in confirmed), Decimal(0)),
        sol_fees=fees + Decimal(failed_lamports).scaleb(-9),
        usdc_received=after["USDC"]["total"] - before["USDC"]["total"],
        usdc_filled=sum((Decimal(o["amount_out"]) for o in confirmed), Decimal(0)),
        reserved_after=sum((b["reserved"] for b in after.values()), Decimal(0)),
        lowest_available=lowest,
        errors=errors,
    )


async def _balances(client: httpx.AsyncClient) -> dict[str, dict[str, Decimal]]:
    wallet = (await client.get("/wallet")).json()
    return {
        b["token"]: {k: Decimal(b[k]) for k in ("total", "reserved", "available")} for b in wallet["balances"]
    }


async def _run_sharing(workbench: Workbench) -> list[Figure]:
    engine = workbench.engine
    progress(f"watcher: other owners' market orders, then with {NEVER_FILLING} never-filling limit orders …")
    other = engine.new_key("bench-other")
    load = await watcher_under_load(
        engine.api_url, engine.operator_key(), other, NEVER_FILLING, WATCHER_ORDERS
    )
    workbench.notes += [f"{WATCHER}: {error}" for error in load.errors[:5]]
    progress(f"watcher: market p50 ×{load.ratio:.2f} with them waiting")
    figures = [
        Figure(
            WATCHER,
            "market order p50, none waiting",
            percentile(load.baseline_ms, 50),
            "ms",
            note="other owners, one at a time",
        ),
        Figure(WATCHER, "market order p50, with them waiting", percentile(load.with_waiting_ms, 50), "ms"),
        Figure(WATCHER, "ratio", load.ratio, note="target ≤ 1.5"),
        Figure(
            WATCHER,
            "a limit order made fillable: price move → CONFIRMED",
            load.fill_after_move_s if load.fill_after_move_s is not None else "did not fill",
            "s",
            note="target ≤ 2 s",
        ),
    ]
    progress(f"conservation: {CONSERVATION_ORDERS} × {CONSERVATION_AMOUNT} SOL at once through two APIs …")
    second_api = await asyncio.to_thread(engine.start, "api")
    try:
        owner = engine.new_key("bench-conservation")
        money = await conservation(
            [engine.api_url, str(second_api.url)], owner, CONSERVATION_ORDERS, CONSERVATION_AMOUNT
        )
    finally:
        second_api.terminate()
        engine.processes.remove(second_api)
    workbench.notes += [f"{CONSERVATION}: {error}" for error in money.errors[:5]]
    exact = money.sol_spent == money.sol_filled + money.sol_fees and money.usdc_received == money.usdc_filled
    figures += [
        Figure(
            CONSERVATION,
            "accepted / refused (insufficient_funds)",
            f"{money.accepted}/{money.refused_insufficient}",
            note=f"of {money.asked}; 10 000 SOL fit 33",
        ),
        Figure(CONSERVATION, "CONFIRMED / FAILED", f"{money.confirmed}/{money.failed}"),
        Figure(
            CONSERVATION,
            "SOL: total moved vs Σ fills + Σ fees",
            f"{money.sol_spent} / {money.sol_filled} + {money.sol_fees}",
            note="exact" if exact else "DIFFERS",
        ),
        Figure(CONSERVATION, "USDC: total moved vs Σ fills", f"{money.usdc_received} / {money.usdc_filled}"),
        Figure(CONSERVATION, "reserved after, all tokens", str(money.reserved_after), note="target 0"),
        Figure(CONSERVATION, "lowest available seen", str(money.lowest_available), note="never below 0"),
    ]
    return figures


async def _run_fair(workbench: Workbench) -> list[Figure]:
    engine = workbench.engine
    progress(f"fair shares: one owner floods {FLOOD} orders at 100/min; another places {FLOOD_OTHERS} …")
    result = await fair_shares(
        engine.api_url, engine.operator_key(), engine.new_key("bench-patient"), FLOOD, FLOOD_OTHERS, 100
    )
    workbench.notes += [f"{FAIR}: {error}" for error in result.errors[:5]]
    progress(f"fair shares: the other owner's p50 {result.p50_s:.1f} s")
    return [
        Figure(
            FAIR,
            "the other owner's orders: accepted → CONFIRMED p50",
            result.p50_s,
            "s",
            note="target ≤ 5 s; simulated latencies 0",
        ),
        Figure(FAIR, "p99", result.p99_s, "s"),
        Figure(
            FAIR,
            "first in, first out, they would wait",
            result.fifo_wait_s,
            "s",
            note=f"{result.flood} queued at 100/min",
        ),
    ]


SHARING_SECTION = Section(
    name="sharing",
    tables=(WATCHER, CONSERVATION),
    needs_s=SHARING_NEEDS_S,
    run=_run_sharing,
    engine=ENGINE,
)
FAIR_SECTION = Section(name="fair", tables=(FAIR,), needs_s=60, run=_run_fair, engine=FAIR_ENGINE)
