"""Keys, owners and roles: nothing of one owner is visible to another, operators alone
drive the market and replay, revoked keys stop working, and the abuse limits hold."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from accounts.keys import key_id
from devstack import InfraUrls
from tests.conftest import make_settings, running_api
from tests.http import is_problem
from tests.integration.test_orders_api import ORDER, wait_terminal
from tests.keys import ALICE, BOB, OPERATOR, auth, create_test_key, revoke_test_key
from tests.streams import read_stream, ws_url

pytestmark = pytest.mark.usefixtures("worker")

WAITING_LIMIT = {
    "type": "limit",
    "token_in": "SOL",
    "token_out": "USDC",
    "amount": "1",
    "limit_price": "100000",
}
PUBLIC_PATHS = {"/health/live", "/health/ready", "/metrics"}


async def wait_status(client: httpx.AsyncClient, order_id: str, status: str) -> None:
    async with asyncio.timeout(60):
        while (await client.get(f"/orders/{order_id}")).json()["status"] != status:
            await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
async def alices_orders(api_url: str) -> AsyncIterator[dict[str, str]]:
    """A finished market order and a waiting limit order, both Alice's."""
    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=auth(ALICE)) as alice:
        done = (await alice.post("/orders", json=ORDER, headers={"Idempotency-Key": "shared-key"})).json()
        waiting = (await alice.post("/orders", json=WAITING_LIMIT)).json()
        await wait_terminal(alice, done["order_id"])
        await wait_status(alice, waiting["order_id"], "WAITING")
        yield {"done": done["order_id"], "waiting": waiting["order_id"]}


async def test_every_endpoint_but_health_and_metrics_needs_a_key(api_url: str) -> None:
    some_order = "ord_01J00000000000000000000000"
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as anonymous:
        schema = (await anonymous.get("/openapi.json")).json()
        routes = [(path, method) for path, item in schema["paths"].items() for method in item]
        assert len(routes) >= 12 and {"/sim/wallet", "/orders/stuck"} <= set(schema["paths"])
        assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
        for path, method in routes:
            url = path.replace("{order_id}", some_order)
            for headers in ({}, auth("oe_not_a_key"), auth(ALICE[:-1] + ("A" if ALICE[-1] != "A" else "B"))):
                response = await anonymous.request(method, url, headers=headers, json={})
                if path in PUBLIC_PATHS:
                    assert response.status_code < 400, (method, path, response.status_code)
                else:
                    assert is_problem(response, 401, "unauthenticated"), (method, path, response.text)
                    assert response.headers["www-authenticate"] == "Bearer"
        assert (await anonymous.get("/metrics")).status_code == 200


async def test_nothing_of_one_owner_is_visible_to_another(
    api_url: str, alices_orders: dict[str, str], client: httpx.AsyncClient
) -> None:
    done, waiting = alices_orders["done"], alices_orders["waiting"]
    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=auth(BOB)) as bob:
        for order_id in (done, waiting):
            assert is_problem(await bob.get(f"/orders/{order_id}"), 404, "order_not_found")
            assert is_problem(await bob.get(f"/orders/{order_id}/events"), 404, "order_not_found")
            assert is_problem(await bob.post(f"/orders/{order_id}/cancel"), 404, "order_not_found")
            assert is_problem(await bob.post(f"/orders/{order_id}/replay"), 403, "operator_required")
        listed = (await bob.get("/orders", params={"limit": 200})).json()["items"]
        assert not {done, waiting} & {o["order_id"] for o in listed}
        assert is_problem(await bob.get("/orders", params={"owner": "alice"}), 403, "operator_required")
        assert (await bob.get("/chain/transactions", params={"order_id": done})).json()["items"] == []
        assert done not in {t["order_id"] for t in (await bob.get("/chain/transactions")).json()["items"]}
        # An Idempotency-Key is per owner: Bob's use of Alice's key is a new order of his.
        bobs = await bob.post("/orders", json=ORDER, headers={"Idempotency-Key": "shared-key"})
        assert bobs.status_code == 202 and bobs.json()["order_id"] != done

    for key in (BOB,):
        stream = await read_stream(api_url, f"orderId={waiting}", key=key)
        assert stream.frames == [
            {"type": "ERROR", "code": "order_not_found", "message": f"no order {waiting}"}
        ]
        assert stream.close_code == 4404

    # Alice herself sees both, and the waiting one is still hers to cancel.
    assert (await client.get(f"/orders/{done}")).json()["status"] == "CONFIRMED"
    mine = {o["order_id"] for o in (await client.get("/orders", params={"limit": 200})).json()["items"]}
    assert {done, waiting} <= mine
    assert len((await client.get("/chain/transactions", params={"order_id": done})).json()["items"]) == 1


async def test_an_operator_reads_every_owner(
    api_url: str, alices_orders: dict[str, str], operator: httpx.AsyncClient
) -> None:
    done = alices_orders["done"]
    assert (await operator.get(f"/orders/{done}")).json()["order_id"] == done
    assert (await operator.get(f"/orders/{done}/events")).status_code == 200
    alices = (await operator.get("/orders", params={"owner": "alice", "limit": 200})).json()["items"]
    assert done in {o["order_id"] for o in alices}
    stream = await read_stream(api_url, f"orderId={done}", key=OPERATOR)
    assert stream.snapshot["status"] == "CONFIRMED" and stream.close_code == 1000


async def test_operator_only_endpoints_refuse_ordinary_keys(
    client: httpx.AsyncClient, operator: httpx.AsyncClient, alices_orders: dict[str, str]
) -> None:
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", "/sim/price", {"pair": "SOL/USDT", "move_bps": 10}),
        ("POST", "/sim/pools", {"token": "NOTYOURS", "liquidity": "10"}),
        ("POST", "/sim/wallet", {"token": "SOL", "amount": "1"}),
        ("GET", "/orders/stuck", None),
        ("POST", f"/orders/{alices_orders['done']}/replay", None),
    ]
    wallet_before = {
        b["token"]: Decimal(b["total"]) for b in (await client.get("/wallet")).json()["balances"]
    }
    for method, path, body in calls:
        response = await client.request(method, path, json=body)
        assert is_problem(response, 403, "operator_required"), (path, response.text)
    assert "NOTYOURS" not in {t["symbol"] for t in (await client.get("/tokens")).json()["items"]}

    # An operator tops up another owner's wallet; alice sees it in hers.
    topped = await operator.post("/sim/wallet", json={"token": "USDT", "amount": "250.5", "owner": "alice"})
    assert topped.status_code == 200, topped.text
    assert Decimal(topped.json()["total"]) == wallet_before["USDT"] + Decimal("250.5")
    wallet_after = {b["token"]: Decimal(b["total"]) for b in (await client.get("/wallet")).json()["balances"]}
    assert wallet_after["USDT"] == wallet_before["USDT"] + Decimal("250.5")
    assert is_problem(
        await operator.post("/sim/wallet", json={"token": "DOGE", "amount": "1"}), 422, "unknown_token"
    )
    stuck = await operator.get("/orders/stuck", params={"older_than": "1h"})
    assert stuck.status_code == 200 and isinstance(stuck.json()["items"], list)
    for absurd in ("soon", "99999999999h", "9999999999d", "5m\n"):
        response = await operator.get("/orders/stuck", params={"older_than": absurd})
        assert is_problem(response, 422, "invalid_duration"), absurd
    for limit in (0, 1001):
        timeline = await client.get(f"/orders/{alices_orders['done']}/events", params={"limit": limit})
        assert timeline.status_code == 422, limit


async def test_a_revoked_key_is_refused_everywhere(infra: InfraUrls, api_url: str) -> None:
    key = await create_test_key(infra.database_url, "carol")
    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=auth(key)) as carol:
        order_id = (await carol.post("/orders", json=WAITING_LIMIT)).json()["order_id"]
        assert (await carol.get(f"/orders/{order_id}")).status_code == 200
        # A stream open on the waiting order (it could wait for days) ends with the key.
        open_stream = asyncio.create_task(read_stream(api_url, f"orderId={order_id}", key=key))
        await asyncio.sleep(0.5)  # let it subscribe: what follows is about an open stream
        await revoke_test_key(infra.database_url, key_id(key))
        async with asyncio.timeout(20):
            revoked = await open_stream
        assert revoked.frames[0]["type"] == "SNAPSHOT"
        assert revoked.frames[-1]["code"] == "unauthenticated" and revoked.close_code == 4401
        async with asyncio.timeout(10):  # each API process trusts a verified key for 2 s
            while (await carol.get(f"/orders/{order_id}")).status_code != 401:
                await asyncio.sleep(0.1)
        assert is_problem(await carol.post("/orders", json=ORDER), 401, "unauthenticated")
    stream = await read_stream(api_url, f"orderId={order_id}", key=key)
    assert stream.frames[0]["code"] == "unauthenticated" and stream.close_code == 4401


async def test_the_websocket_takes_the_header_or_the_token_parameter(
    api_url: str, alices_orders: dict[str, str]
) -> None:
    url = ws_url(api_url, f"orderId={alices_orders['done']}", key=None)
    async with connect(url, additional_headers=auth(ALICE)) as ws:
        assert json.loads(await ws.recv())["type"] == "SNAPSHOT"
    for key in (None, "oe_junk"):
        stream = await read_stream(api_url, f"orderId={alices_orders['done']}", key=key)
        assert stream.frames[0]["code"] == "unauthenticated" and stream.close_code == 4401


# -- abuse limits, on an API process of their own with small limits ---------------


@pytest.fixture(scope="module")
async def limited(
    infra: InfraUrls, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, str]]:
    settings = make_settings(
        infra,
        tmp_path_factory.mktemp("limited"),
        ORDER_ENGINE_ORDERS_PER_MINUTE_PER_KEY=5,
        ORDER_ENGINE_WEBSOCKETS_PER_KEY=2,
        ORDER_ENGINE_MAX_BODY_BYTES=2048,
        ORDER_ENGINE_MAX_ORDER_SOL=100,
        ORDER_ENGINE_WS_PING_INTERVAL_S=0.3,
        ORDER_ENGINE_WS_PING_TIMEOUT_S=0.3,
    )
    async with running_api(settings) as url:
        # A key of its own: the rate limiter's state is per key.
        yield {"url": url, "key": await create_test_key(infra.database_url, "dave")}


async def test_orders_per_minute_per_key(limited: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=limited["url"], timeout=30, headers=auth(limited["key"])) as dave:
        # Refused placements count too: a bad order, then four good ones fill the five.
        assert (await dave.post("/orders", json={**WAITING_LIMIT, "amount": "0"})).status_code == 422
        placed = [await dave.post("/orders", json=WAITING_LIMIT) for _ in range(4)]
        assert [r.status_code for r in placed] == [202] * 4
        refused = await dave.post("/orders", json=WAITING_LIMIT)
        assert is_problem(refused, 429, "rate_limited")
        assert 1 <= int(refused.headers["retry-after"]) <= 12  # one order every 12 s
        mine = (await dave.get("/orders")).json()["items"]
        assert len(mine) == 4  # the refused ones stored nothing
    async with httpx.AsyncClient(base_url=limited["url"], timeout=30, headers=auth(OPERATOR)) as ops:
        for _ in range(4):  # operators are exempt
            response = await ops.post("/orders", json={**WAITING_LIMIT, "expires_in_s": 1})
            assert response.status_code == 202


async def test_an_owner_may_have_so_many_open_orders(infra: InfraUrls, tmp_path: Path) -> None:
    settings = make_settings(infra, tmp_path, ORDER_ENGINE_MAX_OPEN_ORDERS_PER_OWNER=3)
    key = await create_test_key(infra.database_url, "gina")
    async with (
        running_api(settings) as url,
        httpx.AsyncClient(base_url=url, timeout=30, headers=auth(key)) as gina,
    ):
        held = [(await gina.post("/orders", json=WAITING_LIMIT)).json()["order_id"] for _ in range(3)]
        refused = await gina.post("/orders", json=WAITING_LIMIT)
        assert is_problem(refused, 429, "too_many_open_orders") and "retry-after" in refused.headers
        assert len((await gina.get("/orders")).json()["items"]) == 3  # nothing stored
        await gina.post(f"/orders/{held[0]}/cancel")
        await wait_terminal(gina, held[0])
        again = await gina.post("/orders", json=WAITING_LIMIT)
        assert again.status_code == 202
        for order_id in [*held[1:], again.json()["order_id"]]:
            await gina.post(f"/orders/{order_id}/cancel")


async def test_a_flood_of_requests_without_a_valid_key_is_slowed_down(
    infra: InfraUrls, tmp_path: Path
) -> None:
    settings = make_settings(infra, tmp_path, ORDER_ENGINE_FAILED_AUTH_PER_MINUTE=5)
    async with running_api(settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30, headers=auth(ALICE)) as alice:
            assert (await alice.get("/orders")).status_code == 200  # verified: known for a moment
            async with httpx.AsyncClient(base_url=url, timeout=30, headers=auth(BOB[:-1] + "x")) as anyone:
                answers = [(await anyone.get("/orders")).status_code for _ in range(7)]
            assert answers[:5] == [401] * 5 and answers[5:] == [429, 429]
            # The address is slowed down, not a key it was verified for a moment ago.
            assert (await alice.get("/orders")).status_code == 200


async def test_order_size_is_capped_per_token_in_sol(infra: InfraUrls, limited: dict[str, str]) -> None:
    key = await create_test_key(infra.database_url, "ivy")  # a rate bucket of its own
    async with httpx.AsyncClient(base_url=limited["url"], timeout=30, headers=auth(key)) as bob:
        too_big = await bob.post("/orders", json={**ORDER, "amount": "101"})
        assert is_problem(too_big, 422, "order_too_large")
        assert too_big.json()["errors"][0]["field"] == "amount"
        # 20 000 USDC is about 133 SOL at genesis prices; JUP prices through USDC.
        usdc = await bob.post("/orders", json={"token_in": "USDC", "token_out": "SOL", "amount": "20000"})
        assert is_problem(usdc, 422, "order_too_large")
        jup = await bob.post("/orders", json={"token_in": "JUP", "token_out": "USDC", "amount": "50000"})
        assert is_problem(jup, 422, "order_too_large")
        small = await bob.post("/orders", json={**WAITING_LIMIT, "amount": "99", "expires_in_s": 1})
        assert small.status_code == 202
    async with httpx.AsyncClient(base_url=limited["url"], timeout=30, headers=auth(OPERATOR)) as ops:
        big = await ops.post("/orders", json={**WAITING_LIMIT, "amount": "101", "expires_in_s": 1})
        assert big.status_code == 202


async def test_request_bodies_are_capped(limited: dict[str, str]) -> None:
    padded = json.dumps({**ORDER, "note": "x" * 4000}).encode()

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(padded), 500):
            yield padded[start : start + 500]

    async with httpx.AsyncClient(base_url=limited["url"], timeout=30, headers=auth(BOB)) as bob:
        before = len((await bob.get("/orders", params={"limit": 200})).json()["items"])
        declared = await bob.post("/orders", content=padded, headers={"content-type": "application/json"})
        assert is_problem(declared, 413, "payload_too_large")
        streamed = await bob.post("/orders", content=chunked(), headers={"content-type": "application/json"})
        assert is_problem(streamed, 413, "payload_too_large")
        assert len((await bob.get("/orders", params={"limit": 200})).json()["items"]) == before


async def test_open_websockets_per_key(limited: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=limited["url"], timeout=30, headers=auth(limited["key"])) as dave:
        waiting = [o["order_id"] for o in (await dave.get("/orders")).json()["items"]]
        url = ws_url(limited["url"], f"orderId={waiting[0]}", key=limited["key"])
        async with connect(url) as first, connect(url) as second:
            for ws in (first, second):
                assert json.loads(await ws.recv())["type"] == "SNAPSHOT"
            async with connect(url) as third:
                refusal = json.loads(await third.recv())
                with pytest.raises(ConnectionClosed):
                    await third.recv()
                assert refusal["code"] == "too_many_websockets" and third.close_code == 4429
        async with connect(url) as again:  # the slots are free once closed
            assert json.loads(await again.recv())["type"] == "SNAPSHOT"
        for order_id in waiting:
            await dave.post(f"/orders/{order_id}/cancel")


class RawWebSocket:
    """A client that answers the server's pings only when told to, so that the test
    can play one that has silently gone away."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, api_url: str, path: str) -> RawWebSocket:
        host, port = api_url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        nonce = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {nonce}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert b" 101 " in head.split(b"\r\n")[0], head
        return cls(reader, writer)

    async def frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next frame; server frames are not masked."""
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(length)

    def pong(self, payload: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        self.writer.write(bytes([0x80 | 0xA, 0x80 | len(payload)]) + mask + masked)

    def close(self) -> None:
        self.writer.close()


TEXT, CLOSE, PING = 0x1, 0x8, 0x9


async def test_a_client_that_stops_answering_pings_is_closed_and_a_quiet_one_is_not(
    limited: dict[str, str], alices_orders: dict[str, str]
) -> None:
    path = f"/ws/orders?orderId={alices_orders['waiting']}&token={ALICE}"
    answering = await RawWebSocket.open(limited["url"], path)
    silent = await RawWebSocket.open(limited["url"], path)
    try:
        # A live, quiet subscription that answers pings stays open across many of them.
        answered = 0
        async with asyncio.timeout(30):
            while answered < 8:
                opcode, payload = await answering.frame()
                assert opcode != CLOSE, payload
                if opcode == PING:
                    answering.pong(payload)
                    answered += 1
                else:
                    assert opcode == TEXT and json.loads(payload)["type"] == "SNAPSHOT"
        # The one that never answered has been closed for it (1011), without a word from us.
        async with asyncio.timeout(30):
            while (frame := await silent.frame())[0] != CLOSE:
                assert frame[0] in (TEXT, PING)
        assert struct.unpack("!H", frame[1][:2])[0] == 1011
    finally:
        answering.close()
        silent.close()


async def test_no_owner_sees_or_steers_another_owners_strategy(
    api_url: str, client: httpx.AsyncClient, operator: httpx.AsyncClient
) -> None:
    created = await client.post(
        "/strategies",
        json={
            "type": "dca",
            "token_in": "SOL",
            "token_out": "USDC",
            "amount_per_order": "0.01",
            "every": "1h",
        },
    )
    assert created.status_code == 202, created.text
    strategy_id = created.json()["strategy_id"]
    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=auth(BOB)) as bob:
        assert is_problem(await bob.get(f"/strategies/{strategy_id}"), 404, "strategy_not_found")
        assert is_problem(await bob.get(f"/strategies/{strategy_id}/events"), 404, "strategy_not_found")
        assert is_problem(await bob.get(f"/strategies/{strategy_id}/orders"), 404, "strategy_not_found")
        for action in ("pause", "resume", "cancel"):
            answer = await bob.post(f"/strategies/{strategy_id}/{action}")
            assert is_problem(answer, 404, "strategy_not_found")
        assert strategy_id not in {s["strategy_id"] for s in (await bob.get("/strategies")).json()["items"]}
        assert is_problem(await bob.get("/strategies", params={"owner": "alice"}), 403, "operator_required")
    stream = await read_stream(api_url, f"strategyId={strategy_id}", key=BOB, path="/ws/strategies")
    assert stream.frames == [
        {"type": "ERROR", "code": "strategy_not_found", "message": f"no strategy {strategy_id}"}
    ]
    assert stream.close_code == 4404
    # The operator reads it; its owner stops it.
    alices = (await operator.get("/strategies", params={"owner": "alice"})).json()["items"]
    assert strategy_id in {s["strategy_id"] for s in alices}
    assert (await client.post(f"/strategies/{strategy_id}/cancel")).status_code == 202
