"""The failed-auth limit slows down an address that sends keys that are not valid, and
never a valid key: clients behind one proxy or NAT are not locked out by one attacker.
Behind a proxy the address is the client's only when the operator trusts the proxy."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from accounts.keys import generate_key, key_id
from devstack import InfraUrls
from tests.conftest import make_settings, running_api
from tests.http import is_problem
from tests.keys import OPERATOR, auth, create_test_key, revoke_test_key
from tests.streams import read_stream

NO_SUCH_ORDER = "orderId=ord_01J00000000000000000000000"


async def forged_answers(
    client: httpx.AsyncClient, count: int, headers: dict[str, str] | None = None
) -> list[int]:
    """Statuses of `count` requests, each with a new well-formed key that does not exist."""
    return [
        (await client.get("/orders", headers={**auth(generate_key()), **(headers or {})})).status_code
        for _ in range(count)
    ]


async def test_a_flood_of_forged_keys_does_not_lock_out_valid_keys_from_that_address(
    infra: InfraUrls, tmp_path: Path
) -> None:
    settings = make_settings(infra, tmp_path, ORDER_ENGINE_FAILED_AUTH_PER_MINUTE=5)
    erin = await create_test_key(infra.database_url, "erin")
    async with running_api(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as shared_address:
        assert await forged_answers(shared_address, 8) == [401] * 5 + [429] * 3
        # Keys this process has never served, from the address that is being slowed down.
        assert (await shared_address.get("/orders", headers=auth(erin))).status_code == 200
        assert (await shared_address.get("/orders", headers=auth(OPERATOR))).status_code == 200
        # The forged ones are still refused, before any key is looked up.
        refused = await shared_address.get("/orders", headers=auth(generate_key()))
        assert is_problem(refused, 429, "rate_limited") and int(refused.headers["retry-after"]) >= 1
        # A key created now works from there too.
        fresh = await create_test_key(infra.database_url, "erin")
        async with asyncio.timeout(5):
            while (await shared_address.get("/orders", headers=auth(fresh))).status_code != 200:
                await asyncio.sleep(0.1)
        # And a revoked one stops working, within the seconds it always took.
        await revoke_test_key(infra.database_url, key_id(erin))
        async with asyncio.timeout(10):
            while (await shared_address.get("/orders", headers=auth(erin))).status_code == 200:
                await asyncio.sleep(0.1)
        assert (await shared_address.get("/orders", headers=auth(erin))).status_code == 429


async def test_websockets_share_the_failed_auth_limit_and_valid_keys_pass_it(
    infra: InfraUrls, tmp_path: Path
) -> None:
    settings = make_settings(infra, tmp_path, ORDER_ENGINE_FAILED_AUTH_PER_MINUTE=3)
    async with running_api(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as shared_address:
        forged = [await read_stream(url, NO_SUCH_ORDER, key=generate_key()) for _ in range(3)]
        assert all(s.frames[0]["code"] == "unauthenticated" and s.close_code == 4401 for s in forged)
        limited = await read_stream(url, NO_SUCH_ORDER, key=generate_key())
        assert limited.frames[0]["code"] == "rate_limited" and limited.close_code == 4429
        # One limit per address, whichever way the bad keys came.
        assert is_problem(
            await shared_address.get("/orders", headers=auth(generate_key())), 429, "rate_limited"
        )
        # A valid key's stream is authenticated (then finds no such order).
        served = await read_stream(url, NO_SUCH_ORDER, key=OPERATOR)
        assert served.frames[0]["code"] == "order_not_found" and served.close_code == 4404


async def test_x_forwarded_for_names_the_client_only_from_a_trusted_proxy(
    infra: InfraUrls, tmp_path: Path
) -> None:
    one, other = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "203.0.113.8"}
    # The tests' client is 127.0.0.1: here it is a proxy the operator trusts.
    trusting = make_settings(
        infra,
        tmp_path / "trusting",
        ORDER_ENGINE_FAILED_AUTH_PER_MINUTE=3,
        ORDER_ENGINE_TRUSTED_PROXIES="127.0.0.1",
    )
    async with running_api(trusting) as url, httpx.AsyncClient(base_url=url, timeout=30) as proxy:
        assert await forged_answers(proxy, 4, one) == [401, 401, 401, 429]
        assert await forged_answers(proxy, 1, other) == [401]  # another client behind the proxy
        # What the client itself wrote left of the proxy's entry changes nothing.
        assert await forged_answers(proxy, 1, {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}) == [429]
    # Not trusted (the default): the header is ignored, the peer is the client.
    ignoring = make_settings(infra, tmp_path / "ignoring", ORDER_ENGINE_FAILED_AUTH_PER_MINUTE=3)
    async with running_api(ignoring) as url, httpx.AsyncClient(base_url=url, timeout=30) as anyone:
        assert await forged_answers(anyone, 4, one) == [401, 401, 401, 429]
        assert await forged_answers(anyone, 1, other) == [429]
