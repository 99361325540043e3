"""`make chaos`: a bounded fault-injection run against real processes, on loopback.

Places CHAOS_ORDERS orders (default 500) through two APIs while two workers execute
them with the default simulated faults, and meanwhile: SIGKILLs workers again and
again, SIGKILLs an API, restarts Redis once and PostgreSQL once. Clients retry refused
requests with their Idempotency-Key and follow a sample of orders over WebSockets,
reconnecting with `after_seq` to whichever API lives. Then it waits for every accepted
order and reports: placed, terminal, lost, executed twice, seq gaps; per fault kind the
worst recovery (bench/recovery.py), the configured bound, and what the worst order's
workflow history shows it waited on; and how many workflow task timeouts had no kill
behind them (a starved worker) and how long a timed-out task waited for a worker.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from temporalio.client import Client
from temporalio.service import RPCError
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bench.recovery import NO_FAULT, Fault, KindRecovery, describe, task_timeouts, waited_on, worst_per_kind
from bench.stats import percentile
from contracts.policies import (
    RECOVERY_PROMISE,
    WORKFLOW_TASK_TIMEOUT,
    FaultKind,
    recovery_bound,
    recovery_paths,
)
from devstack import EmbeddedStack
from devstack.engine import QUIET_MARKET, EngineProcess, EngineProcesses
from migrations import run_migrations
from orders.placement import IN_FLIGHT_FOR
from orders.reconciler import ORPHAN_AFTER

ORDERS = int(os.environ.get("CHAOS_ORDERS", "500"))
ORDERS_PER_S = 25.0
FOLLOW_EVERY = 5  # one order in five is followed over a WebSocket
TERMINAL = {"CONFIRMED", "FAILED", "CANCELLED", "EXPIRED"}
RESULTS = Path(__file__).parent / "results"
PROMISE_S = RECOVERY_PROMISE.total_seconds()


def progress(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Chaos:
    def __init__(self, stack: EmbeddedStack, engine: EngineProcesses) -> None:
        self.stack, self.engine = stack, engine
        self.apis: list[EngineProcess] = []
        self.workers: list[EngineProcess] = []
        self.accepted: list[str] = []
        self.refused: list[str] = []
        self.kills: list[tuple[str, float]] = []  # (what, wall-clock time)
        self.stream_gaps: list[str] = []
        self.done_placing = asyncio.Event()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.engine.operator_key()}"}

    def live_api(self) -> str:
        return str(random.choice([a for a in self.apis if a.running]).url)

    async def place_all(self) -> None:
        async with httpx.AsyncClient(timeout=10, trust_env=False, headers=self.auth) as client:
            followers = []
            for n in range(ORDERS):
                order_id = await self.place(client, f"chaos-{n}")
                if order_id is not None:
                    self.accepted.append(order_id)
                    if n % FOLLOW_EVERY == 0:
                        followers.append(asyncio.create_task(self.follow(order_id)))
                await asyncio.sleep(1 / ORDERS_PER_S)
            self.done_placing.set()
            await asyncio.gather(*followers)

    async def place(self, client: httpx.AsyncClient, key: str) -> str | None:
        """Retry one order (same key) across APIs until it is accepted; None if refused."""
        body = {"token_in": "SOL", "token_out": "USDC", "amount": "0.2", "slippage_bps": 200}
        for _ in range(120):
            try:
                response = await client.post(
                    f"{self.live_api()}/orders", json=body, headers={"Idempotency-Key": key}
                )
            except (httpx.HTTPError, IndexError):
                await asyncio.sleep(0.5)
                continue
            if response.status_code in (200, 202):
                return str(response.json()["order_id"])
            await asyncio.sleep(0.5)  # 409 in flight, 503 storage restarting: try again
        self.refused.append(key)
        return None

    async def follow(self, order_id: str) -> None:
        """Follow one order to its end over WebSockets, reconnecting with after_seq."""
        last = 0
        for _ in range(200):
            try:
                async with connect(
                    f"{self.live_api().replace('http', 'ws')}/ws/orders?orderId={order_id}&after_seq={last}",
                    additional_headers=self.auth,
                ) as ws:
                    async for raw in ws:
                        frame = json.loads(raw)
                        if frame["type"] == "SNAPSHOT":
                            if frame["seq"] < last:
                                self.stream_gaps.append(f"{order_id}: snapshot went back to {frame['seq']}")
                            continue
                        if frame["seq"] != last + 1:
                            self.stream_gaps.append(f"{order_id}: {last} then {frame['seq']}")
                        last = frame["seq"]
                        if frame["status"] in TERMINAL:
                            return
            except (ConnectionClosed, InvalidStatus, OSError, IndexError):
                await asyncio.sleep(0.3)

    async def inflict(self) -> None:
        """The fault schedule: worker kills throughout, one API kill, Redis and PostgreSQL restarts."""
        schedule = itertools.cycle(["worker", "worker", "api", "worker", "redis", "worker", "postgres"])
        faults_done: set[str] = set()
        while not self.done_placing.is_set():
            await asyncio.sleep(4)
            fault = next(schedule)
            if fault in ("redis", "postgres", "api") and fault in faults_done:
                fault = "worker"
            faults_done.add(fault)
            self.kills.append((fault, time.time()))
            progress(f"fault: {fault} ({len(self.accepted)} orders accepted so far)")
            if fault == "worker":
                victim = random.choice([w for w in self.workers if w.running])
                victim.kill()
                self.workers.append(await asyncio.to_thread(self.engine.start, "worker"))
            elif fault == "api":
                victim = random.choice([a for a in self.apis if a.running])
                victim.kill()
                self.apis.append(await asyncio.to_thread(self.engine.start, "api"))
            elif fault == "redis":
                await asyncio.to_thread(self.stack.redis.stop)
                await asyncio.to_thread(self.stack.redis.start)
            else:
                await asyncio.to_thread(self.stack.postgres.stop)
                await asyncio.sleep(1)
                await asyncio.to_thread(self.stack.postgres.start)

    async def run(self) -> dict[str, Any]:
        self.workers = [self.engine.start("worker") for _ in range(2)]
        self.apis = [self.engine.start("api") for _ in range(2)]
        started = time.monotonic()
        await asyncio.gather(self.place_all(), self.inflict())
        progress(f"placed {len(self.accepted)}; waiting for every order to end")
        await self.wait_terminal(deadline_s=240)
        return await self.report(time.monotonic() - started)

    async def wait_terminal(self, deadline_s: float) -> None:
        conn = await asyncpg.connect(self.stack.urls.database_url.replace("+asyncpg", ""))
        try:
            deadline = time.monotonic() + deadline_s
            while time.monotonic() < deadline:
                open_orders = await conn.fetchval(
                    "SELECT count(*) FROM orders WHERE id = ANY($1::text[]) AND status <> ALL($2::text[])",
                    self.accepted,
                    list(TERMINAL),
                )
                if open_orders == 0:
                    return
                await asyncio.sleep(1)
        finally:
            await conn.close()

    async def report(self, elapsed_s: float) -> dict[str, Any]:
        conn = await asyncpg.connect(self.stack.urls.database_url.replace("+asyncpg", ""))
        try:
            statuses = dict(
                await conn.fetch(
                    "SELECT status, count(*) FROM orders WHERE id = ANY($1::text[]) GROUP BY status",
                    self.accepted,
                )
            )
            failures = dict(
                await conn.fetch(
                    "SELECT split_part(failure_reason, ':', 1), count(*) FROM orders"
                    " WHERE id = ANY($1::text[]) AND status = 'FAILED' GROUP BY 1",
                    self.accepted,
                )
            )
            twice = await conn.fetchval(
                "SELECT count(*) FROM (SELECT order_id FROM chain_transactions GROUP BY order_id HAVING count(*) > 1) t"
            )
            events = await conn.fetch(
                "SELECT order_id, seq, extract(epoch FROM at) AS at FROM order_events WHERE order_id = ANY($1::text[])"
                " ORDER BY order_id, seq",
                self.accepted,
            )
        finally:
            await conn.close()
        by_order: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for row in events:
            by_order[row["order_id"]].append((row["seq"], float(row["at"])))
        log_gaps = sum(
            1 for seqs in by_order.values() if [s for s, _ in seqs] != list(range(1, len(seqs) + 1))
        )
        terminal = sum(count for status, count in statuses.items() if status in TERMINAL)
        return {
            "orders placed": ORDERS,
            "orders accepted": len(self.accepted),
            "refused after retries": len(self.refused),
            "terminal": terminal,
            "lost (accepted, not terminal)": len(self.accepted) - terminal,
            "executed twice": twice,
            "seq gaps in event logs": log_gaps,
            "seq gaps seen by WebSocket clients": len(self.stream_gaps),
            "orders followed over WebSockets": len(self.accepted[::FOLLOW_EVERY]),
            "faults": [what for what, _ in self.kills],
            "worst recovery per fault kind": {
                kind: {
                    "worst (s)": entry.worst_s,
                    "faults": entry.faults,
                    "orders stalled": entry.stalled_orders,
                    "past the promise": entry.over_promise,
                    "order": entry.worst.order_id if entry.worst else None,
                    "worst compounded (s)": entry.worst_compounded_s,
                    "compounded with": [f.kind for f in entry.worst_compounded.later_faults]
                    if entry.worst_compounded
                    else [],
                    "bound": bound_of(kind),
                    "its history": entry.waited_on,
                }
                for kind, entry in (await self.recoveries(by_order)).items()
            },
            "workflow task timeouts": await self.task_timeouts(),
            "statuses": statuses,
            "failure reasons": failures,
            "elapsed (s)": round(elapsed_s, 1),
        }

    async def task_timeouts(self) -> dict[str, Any]:
        client = await Client.connect(self.stack.urls.temporal_address)
        found = await task_timeouts(
            client,
            self.accepted,
            [at for what, at in self.kills if what == FaultKind.WORKER],
            WORKFLOW_TASK_TIMEOUT.total_seconds(),
        )
        example: list[str] = []
        if found.spurious_orders:
            # The whole history of one: what its worker was doing when the task ran out.
            history = await client.get_workflow_handle(found.spurious_orders[0]).fetch_history()
            start = history.events[0].event_time.ToNanoseconds() / 1e9
            example = [
                f"{e.event_time.ToNanoseconds() / 1e9 - start:+6.2f}s {describe(e)}" for e in history.events
            ]
        return {
            "after a worker kill": found.after_worker_kill,
            "spurious (no kill: a starved worker)": found.spurious,
            "spurious in orders": sorted(set(found.spurious_orders))[:5],
            "a timed-out task's wait for a worker (s)": {
                "median": round(percentile(found.pickup_s, 50), 2),
                "max": round(max(found.pickup_s, default=0.0), 2),
            },
            "a spurious one's history": example,
        }

    async def recoveries(self, by_order: dict[str, list[tuple[int, float]]]) -> dict[str, KindRecovery]:
        """Per kind of fault, the worst stall of an order it interrupted, and what that
        order's workflow history shows it waited on."""
        progress = {order_id: [t for _, t in seqs] for order_id, seqs in by_order.items()}
        faults = [Fault(kind, at) for kind, at in self.kills]
        worst = worst_per_kind(progress, faults, PROMISE_S)
        client = await Client.connect(self.stack.urls.temporal_address)
        for entry in worst.values():
            if entry.worst is not None:
                try:
                    entry.waited_on = await waited_on(client, entry.worst)
                except RPCError as error:
                    entry.waited_on = [f"(no history: {error})"]
        return worst


def bound_of(kind: str) -> dict[str, Any]:
    """What bounds recovery from a fault of `kind`, from the configuration."""
    if kind == NO_FAULT:
        return {"bounded by": "", "paths": []}
    fault = FaultKind(kind)
    paths = [str(p) for p in recovery_paths(fault)]
    bound = str(recovery_bound(fault))
    if fault is FaultKind.API:
        # An order whose placing request died between storing it and starting its workflow.
        bound = (
            "a placing request killed before it started the workflow: the client's retry waits out"
            f" the in-flight window {IN_FLIGHT_FOR.total_seconds():g} s"
            f" (the reconciler: {ORPHAN_AFTER.total_seconds():g} s)"
        )
        paths.append(bound)
    return {"bounded by": bound, "paths": paths}


def print_recoveries(per_kind: dict[str, dict[str, Any]]) -> None:
    print(f"worst recovery per fault kind (promise: {PROMISE_S:g} s after any single fault)")
    for kind, entry in per_kind.items():
        later = Counter(entry["compounded with"])
        compounded = (
            f"; compounded: {entry['worst compounded (s)']:.2f} s with"
            f" {' and '.join(f'{n} more {k}' for k, n in later.items())} fault(s) in its gap"
            if later
            else ""
        )
        stalled = f"{entry['orders stalled']} stalls in {entry['faults']} faults, " if entry["faults"] else ""
        print(
            f"  {kind:22} worst {entry['worst (s)']:5.2f} s ({entry['order']}): "
            f"{stalled}{entry['past the promise']} past {PROMISE_S:g} s{compounded}"
        )
        if entry["bound"]["bounded by"]:
            print(f"      bound: {entry['bound']['bounded by']}")
        for line in entry["its history"]:
            print(f"      {line}")


async def main() -> int:
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        stack = EmbeddedStack(Path(tmp) / "infra", ui=False, persistent=True)
        engine = EngineProcesses(
            stack.urls,
            Path(tmp),
            {
                **QUIET_MARKET,
                "ORDER_ENGINE_SIM_QUOTE_LATENCY_MS": "20",
                "ORDER_ENGINE_SIM_EXECUTION_LATENCY_MS": "500",
                "ORDER_ENGINE_SIM_FAILURE_RATE": "0.05",
                "ORDER_ENGINE_SIM_BACKGROUND_TRADES_PER_S": "2",
                "ORDER_ENGINE_LOG_LEVEL": "WARNING",
            },
        )
        try:
            progress("starting the embedded stack")
            urls = await asyncio.to_thread(stack.start)
            await asyncio.to_thread(run_migrations, urls.database_url)  # alembic runs its own loop
            engine.infra = stack.urls
            result = await Chaos(stack, engine).run()
        finally:
            engine.stop()
            stack.stop()
    timeouts = dict(result["workflow task timeouts"])
    example = timeouts.pop("a spurious one's history")
    for key, value in {**result, "workflow task timeouts": timeouts}.items():
        if key != "worst recovery per fault kind":
            print(f"{key:40} {value}")
    if example:
        print("a spurious workflow task timeout, in its order's history:")
        for line in example:
            print(f"      {line}")
    print_recoveries(result["worst recovery per fault kind"])
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"chaos-{stamp}.json").write_text(json.dumps(result, indent=2))
    clean = result["lost (accepted, not terminal)"] == 0 and result["executed twice"] == 0
    clean = (
        clean and result["seq gaps in event logs"] == 0 and result["seq gaps seen by WebSocket clients"] == 0
    )
    return 0 if clean else 1


if __name__ == "__main__":
    code = asyncio.run(main())
    sys.stdout.flush()
    os._exit(code)
