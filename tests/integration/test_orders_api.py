"""Orders over HTTP and WebSocket against real Temporal, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from core.settings import Settings
from devstack import InfraUrls
from tests.http import is_problem
from tests.keys import auth, create_test_key
from tests.streams import TERMINAL, read_stream

pytestmark = pytest.mark.usefixtures("worker")

ORDER = {"type": "market", "token_in": "SOL", "token_out": "USDC", "amount": "1.5", "slippage_bps": 100}


async def place(
    client: httpx.AsyncClient, body: dict[str, Any] | None = None, /, **headers: str
) -> httpx.Response:
    return await client.post("/orders", json=body or ORDER, headers=headers)


async def wait_terminal(client: httpx.AsyncClient, order_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        order: dict[str, Any] = (await client.get(f"/orders/{order_id}")).json()
        if order["status"] in TERMINAL:
            return order
        assert asyncio.get_running_loop().time() < deadline, order
        await asyncio.sleep(0.05)


async def test_market_order_lifecycle_over_http_and_websocket(
    client: httpx.AsyncClient, api_url: str, settings: Settings
) -> None:
    response = await place(client)
    assert response.status_code == 202
    accepted = response.json()
    order_id = accepted["order_id"]
    assert accepted["status"] == "PENDING"
    assert accepted["ws_url"] == f"/ws/orders?orderId={order_id}"

    stream = await read_stream(api_url, f"orderId={order_id}")

    assert stream.snapshot["type"] == "SNAPSHOT" and stream.snapshot["order_id"] == order_id
    stream.assert_gap_free()
    assert stream.close_code == 1000
    statuses = [stream.snapshot["status"]] + [e["status"] for e in stream.events]
    path = [s for i, s in enumerate(statuses) if i == 0 or s != statuses[i - 1]]
    assert path[-4:] == ["ROUTING", "BUILDING", "SUBMITTED", "CONFIRMED"]
    building = next(e for e in stream.events if e["status"] == "BUILDING")
    assert {q["dex"] for q in building["data"]["quotes"]} == {"raydium", "meteora"}
    confirmed = stream.events[-1]
    assert confirmed["status"] == "CONFIRMED"
    assert set(confirmed["data"]) >= {"tx_hash", "executed_price", "amount_out"}

    order = (await client.get(f"/orders/{order_id}")).json()
    assert order["status"] == "CONFIRMED"
    assert order["tx_hash"] == confirmed["data"]["tx_hash"]
    assert order["selected_dex"] in {"raydium", "meteora", "split"}
    assert float(order["amount_out"]) >= float(order["min_amount_out"]) > 0
    assert order["attempts"] == 1

    txs = (await client.get("/chain/transactions", params={"order_id": order_id})).json()["items"]
    assert [tx["tx_hash"] for tx in txs] == [order["tx_hash"]]

    redis = Redis.from_url(settings.redis_url)
    try:
        assert await redis.exists(f"active:order:{order_id}") == 0
    finally:
        await redis.aclose()

    timeline = (await client.get(f"/orders/{order_id}/events")).json()["items"]
    assert [e["seq"] for e in timeline if e["type"] == "EVENT"] == list(range(1, confirmed["seq"] + 1))


async def test_order_is_readable_and_active_right_after_202(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    order_id = (await place(client)).json()["order_id"]
    order = (await client.get(f"/orders/{order_id}")).json()
    assert order["order_id"] == order_id and order["amount_in"] == "1.5"
    await wait_terminal(client, order_id)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({**ORDER, "amount": "-1"}, "invalid_amount"),
        ({**ORDER, "amount": "0"}, "invalid_amount"),
        ({**ORDER, "amount": "0.000"}, "invalid_amount"),
        ({**ORDER, "amount": "abc"}, "invalid_amount"),
        ({**ORDER, "amount": "1e3"}, "invalid_amount"),
        ({**ORDER, "amount": "NaN"}, "invalid_amount"),
        ({**ORDER, "amount": 1.5}, "invalid_amount"),
        ({**ORDER, "amount": "1.0000000001"}, "invalid_amount"),  # SOL has 9 decimals
        ({**ORDER, "amount": "18446744074"}, "invalid_amount"),  # ≥ 2^64 lamports
        ({**ORDER, "amount": "1.5\n"}, "invalid_amount"),  # a trailing newline
        ({**ORDER, "amount": "١٢"}, "invalid_amount"),  # digits, but not ASCII ones
        ({**ORDER, "type": "limit", "limit_price": "1" + "0" * 22}, "invalid_limit_price"),  # column overflow
        (
            {**ORDER, "type": "limit", "limit_price": "0." + "0" * 18 + "1"},
            "invalid_limit_price",
        ),  # 19 decimals
        ({**ORDER, "type": "sniper", "token_out": "NEWCOIN\n"}, "invalid_token"),
        ({**ORDER, "token_out": "SOL"}, "same_token"),
        ({**ORDER, "token_in": "NOPE"}, "unknown_token"),
        ({**ORDER, "slippage_bps": 0}, "invalid_slippage"),
        ({**ORDER, "slippage_bps": 5001}, "invalid_slippage"),
        ({**ORDER, "slippage_bps": "50"}, "invalid_slippage"),
        ({**ORDER, "type": "stop"}, "invalid_type"),
        ({**ORDER, "surprise": 1}, "unknown_field"),
        ({k: v for k, v in ORDER.items() if k != "amount"}, "missing_field"),
    ],
)
async def test_bad_orders_are_refused_and_change_nothing(
    client: httpx.AsyncClient, body: dict[str, Any], code: str
) -> None:
    before = (await client.get("/orders", params={"limit": 200})).json()["items"]
    response = await client.post("/orders", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == code and problem["status"] == 422
    assert problem["title"] and problem["detail"] and problem["type"]
    assert (await client.get("/orders", params={"limit": 200})).json()["items"][:1] == before[:1]


async def test_malformed_json_is_a_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/orders", content=b'{"token_in": "SOL",', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "malformed_json"
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_responses_carry_the_request_id_given_or_a_new_one(client: httpx.AsyncClient) -> None:
    given = await client.get("/orders", headers={"X-Request-ID": "trace-42"})
    refused = await client.post("/orders", json={**ORDER, "amount": "-1"})
    assert given.headers["x-request-id"] == "trace-42"
    for unfit in ("x" * 129, "trace 42", "trace\u00e942"):  # too long, or not plain: a new id instead
        answered = await client.get("/orders", headers={b"X-Request-ID": unfit.encode()})
        assert len(answered.headers["x-request-id"]) == 32
    assert refused.status_code == 422 and len(refused.headers["x-request-id"]) == 32


async def test_idempotency_key_returns_the_same_order(client: httpx.AsyncClient) -> None:
    first = await place(client, **{"Idempotency-Key": "same-body-key"})
    again = await place(client, **{"Idempotency-Key": "same-body-key"})
    assert first.status_code == 202 and again.status_code == 200
    assert again.json() == first.json()

    other_body = await place(client, {**ORDER, "amount": "2"}, **{"Idempotency-Key": "same-body-key"})
    assert other_body.status_code == 422
    assert other_body.json()["code"] == "idempotency_key_reused"
    await wait_terminal(client, first.json()["order_id"])


async def test_concurrent_requests_with_one_key_make_one_order(client: httpx.AsyncClient) -> None:
    responses = await asyncio.gather(
        *(place(client, **{"Idempotency-Key": "five-at-once"}) for _ in range(5))
    )
    accepted = [r for r in responses if r.status_code in (200, 202)]
    assert all(r.status_code in (200, 202, 409) for r in responses), [r.status_code for r in responses]
    assert sum(r.status_code == 202 for r in responses) == 1
    assert len({r.json()["order_id"] for r in accepted}) == 1
    for conflict in (r for r in responses if r.status_code == 409):
        assert conflict.json()["code"] == "idempotency_request_in_flight"
    order_id = accepted[0].json()["order_id"]
    assert (await place(client, **{"Idempotency-Key": "five-at-once"})).json()["order_id"] == order_id
    await wait_terminal(client, order_id)


async def test_unknown_and_malformed_orders(client: httpx.AsyncClient, api_url: str) -> None:
    missing = "ord_01J00000000000000000000000"
    response = await client.get(f"/orders/{missing}")
    assert response.status_code == 404 and response.json()["code"] == "order_not_found"
    assert (await client.get("/orders/not-an-id")).status_code == 404

    unknown = await read_stream(api_url, f"orderId={missing}")
    assert unknown.frames == [{"type": "ERROR", "code": "order_not_found", "message": f"no order {missing}"}]
    assert unknown.close_code == 4404

    malformed = await read_stream(api_url, "orderId=banana")
    assert malformed.frames[0]["type"] == "ERROR" and malformed.close_code == 4400
    no_id = await read_stream(api_url, "")
    assert no_id.close_code == 4400


async def test_after_seq_replays_missed_events_of_a_finished_order(
    client: httpx.AsyncClient, api_url: str
) -> None:
    order_id = (await place(client)).json()["order_id"]
    await wait_terminal(client, order_id)

    plain = await read_stream(api_url, f"orderId={order_id}")
    assert [f["type"] for f in plain.frames] == ["SNAPSHOT"]
    assert plain.close_code == 1000
    last = plain.snapshot["seq"]

    replay = await read_stream(api_url, f"orderId={order_id}&after_seq=2")
    assert replay.snapshot["seq"] == last
    assert [e["seq"] for e in replay.events] == list(range(3, last + 1))
    assert replay.close_code == 1000


async def test_reconnecting_mid_stream_with_after_seq_loses_nothing(
    client: httpx.AsyncClient, api_url: str
) -> None:
    order_id = (await place(client)).json()["order_id"]
    first = await read_stream(api_url, f"orderId={order_id}", until_frames=1)
    seen = first.snapshot["seq"]
    rest = await read_stream(api_url, f"orderId={order_id}&after_seq={seen}")
    seqs = [e["seq"] for e in rest.events]
    assert seqs == list(range(seen + 1, rest.events[-1]["seq"] + 1))
    assert rest.events[-1]["status"] == "CONFIRMED"


async def test_an_order_beyond_what_is_available_is_refused_and_stores_nothing(
    api_url: str, infra: InfraUrls
) -> None:
    key = await create_test_key(infra.database_url, "frank")
    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=auth(key)) as frank:
        # A waiting limit order keeps 9 500 of frank's 10 000 SOL reserved, and the fees of
        # its 3 attempts at most: 3 × (5 000 + 20 000 max priority) lamports.
        waiting = await frank.post(
            "/orders",
            json={
                **ORDER,
                "type": "limit",
                "amount": "9500",
                "limit_price": "100000",
                "priority_fee": {"level": "high", "max_lamports": 20_000},
            },
        )
        assert waiting.status_code == 202, waiting.text
        wallet = (await frank.get("/wallet")).json()
        sol = next(b for b in wallet["balances"] if b["token"] == "SOL")
        assert (sol["total"], sol["reserved"], sol["available"]) == ("10000", "9500.000075", "499.999925")
        # 499.99992 SOL would fit; with its own fee budget (3 × 5 000 lamports) it does not.
        refused = await place(frank, {**ORDER, "amount": "499.99992", "priority_fee": "none"})
        assert is_problem(refused, 422, "insufficient_funds"), refused.text
        assert "fees of up to 3 attempts" in refused.json()["detail"]
        assert (await frank.get("/orders", params={"limit": 10})).json()["items"][1:] == []  # nothing stored
        await frank.post(f"/orders/{waiting.json()['order_id']}/cancel")
        assert (await wait_terminal(frank, waiting.json()["order_id"]))["status"] == "CANCELLED"
        sol = next(b for b in (await frank.get("/wallet")).json()["balances"] if b["token"] == "SOL")
        assert (sol["total"], sol["reserved"], sol["available"]) == ("10000", "0", "10000")


async def test_burst_of_30_orders_all_confirm_once_with_gap_free_streams(
    client: httpx.AsyncClient, api_url: str
) -> None:
    responses = await asyncio.gather(*(place(client, {**ORDER, "amount": "0.5"}) for _ in range(30)))
    order_ids = [r.json()["order_id"] for r in responses]
    streams = await asyncio.gather(*(read_stream(api_url, f"orderId={oid}&after_seq=0") for oid in order_ids))
    for stream in streams:
        stream.frames[0]["seq"] = 0  # after_seq=0 replays from the first event
        stream.assert_gap_free()
        assert stream.events[-1]["status"] == "CONFIRMED"
        assert stream.close_code == 1000
    hashes = {s.events[-1]["data"]["tx_hash"] for s in streams}
    assert len(hashes) == 30
    for order_id in order_ids:
        txs = (await client.get("/chain/transactions", params={"order_id": order_id})).json()["items"]
        assert len(txs) == 1


async def test_orders_list_pages_newest_first(client: httpx.AsyncClient) -> None:
    ids = [(await place(client)).json()["order_id"] for _ in range(3)]
    page = (await client.get("/orders", params={"limit": 2})).json()
    assert [o["order_id"] for o in page["items"]] == ids[::-1][:2]
    following = (await client.get("/orders", params={"limit": 2, "cursor": page["next_cursor"]})).json()
    assert following["items"][0]["order_id"] == ids[0]
    for order_id in ids:
        await wait_terminal(client, order_id)
    bad = await client.get("/orders", params={"limit": 0})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")


async def test_reference_endpoints(client: httpx.AsyncClient) -> None:
    tokens = (await client.get("/tokens")).json()["items"]
    assert {"symbol": "USDC", "mint": "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", "decimals": 6} in tokens
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}  # details: operators only
    metrics = (await client.get("/metrics")).text
    assert "order_engine_orders_created_total" in metrics
    assert (await client.get("/openapi.json")).json()["paths"]["/orders"]["post"]


async def test_the_timeline_comes_a_page_at_a_time(client: httpx.AsyncClient) -> None:
    order_id = (await place(client)).json()["order_id"]
    await wait_terminal(client, order_id)
    whole = (await client.get(f"/orders/{order_id}/events")).json()
    assert whole["next_after_seq"] is None
    pages, after = [], 0
    while True:
        page = (
            await client.get(f"/orders/{order_id}/events", params={"after_seq": after, "limit": 2})
        ).json()
        pages.append(page["items"])
        if page["next_after_seq"] is None:
            break
        after = page["next_after_seq"]
    assert [item for items in pages for item in items] == whole["items"]
    assert all(len([i for i in items if i["type"] == "EVENT"]) <= 2 for items in pages) and len(pages) >= 3
