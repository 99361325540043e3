"""Any JSON value in any field of any POST body, through the real API: never a 5xx, and
every refusal is problem+json with a stable `code`. Complements the schemathesis fuzz
(tests/e2e/test_api_fuzz.py), which generates whole requests from the schema: here each
field of a body that is otherwise valid (so every check behind the schema is reached)
gets values the schema never describes: huge numbers, exponents, NaN, lists, objects."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import hypothesis
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from devstack import InfraUrls
from tests.http import is_problem
from tests.keys import OPERATOR, auth, create_test_key

pytestmark = pytest.mark.usefixtures("worker")

# A JSON integer longer than Python's int-from-text limit (4300 digits): written into the
# body as text, since json.dumps refuses it too.
HUGE_INTEGER = "1" + "0" * 5000
HUGE = object()
NEW_TOKEN = "FUZZ"


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    body: dict[str, Any]
    operator: bool = False

    def fields(self) -> list[tuple[str | int, ...]]:
        """Every field, and every field inside an object or list field."""
        paths: list[tuple[str | int, ...]] = []
        for name, value in self.body.items():
            paths.append((name,))
            if isinstance(value, dict):
                paths += [(name, inner) for inner in value]
            if isinstance(value, list):
                paths += [(name, i) for i in range(len(value))]
        return paths


def endpoints(quote_id: str, owner: str) -> list[Endpoint]:
    sol_usdc = {"token_in": "SOL", "token_out": "USDC", "amount": "0.01"}
    return [
        Endpoint(
            "market order",
            "/orders",
            {
                "type": "market",
                **sol_usdc,
                "slippage_bps": 100,
                "swap_mode": "exact_in",
                "dexes": ["raydium", "meteora"],
                "max_hops": 3,
                "priority_fee": {"level": "low", "max_lamports": 100_000},
                "tip_lamports": 10_000,
                "simulate": True,
            },
        ),
        Endpoint("exact-price order", "/orders", {**sol_usdc, "priority_fee": {"micro_lamports_per_cu": 5}}),
        Endpoint(
            "limit order",
            "/orders",
            {"type": "limit", **sol_usdc, "limit_price": "100000", "expires_in_s": 600},
        ),
        Endpoint("stop-loss", "/orders", {"type": "stop_loss", **sol_usdc, "trigger_price": "1"}),
        Endpoint("take-profit", "/orders", {"type": "take_profit", **sol_usdc, "trigger_price": "100000"}),
        Endpoint(
            "trailing stop",
            "/orders",
            {"type": "trailing_stop", **sol_usdc, "trailing_bps": 500, "trigger_price": "1"},
        ),
        Endpoint(
            "sniper",
            "/orders",
            {
                "type": "sniper",
                "token_in": "SOL",
                "token_out": "NOTYET",
                "amount": "0.01",
                "expires_in_s": 60,
            },
        ),
        Endpoint("order from a quote", "/orders", {"quote_id": quote_id}),
        Endpoint(
            "quote",
            "/quotes",
            {
                **sol_usdc,
                "swap_mode": "exact_in",
                "slippage_bps": 50,
                "priority_fee": {"level": "medium"},
                "tip_lamports": 10_000,
                "simulate": True,
                "dexes": ["raydium"],
                "max_hops": 2,
            },
        ),
        Endpoint(
            "twap",
            "/strategies",
            {
                "type": "twap",
                **sol_usdc,
                "slices": 2,
                "interval_s": 3600,
                "limit_price": "1",
                "slippage_bps": 50,
            },
        ),
        Endpoint(
            "dca",
            "/strategies",
            {
                "type": "dca",
                "token_in": "SOL",
                "token_out": "USDC",
                "amount_per_order": "0.01",
                "every": "1h",
                "orders": 2,
            },
        ),
        Endpoint(
            "bracket",
            "/strategies",
            {
                "type": "bracket",
                **sol_usdc,
                "take_profit_price": "100000",
                "stop_loss_price": "1",
                "expires_in_s": 600,
            },
        ),
        Endpoint(
            "trailing bracket",
            "/strategies",
            {"type": "bracket", **sol_usdc, "take_profit_price": "100000", "trailing_bps": 500},
        ),
        Endpoint("top-up", "/sim/wallet", {"owner": owner, "token": "SOL", "amount": "1"}, operator=True),
        Endpoint(
            "new pool",
            "/sim/pools",
            {
                "token": NEW_TOKEN,  # listed on raydium by the test, so this is a second venue
                "dex": "meteora",
                "quote_token": "SOL",
                "liquidity": "10",
                "price": "0.001",
                "decimals": 6,
                "activation_in_s": 0,
            },
            operator=True,
        ),
        Endpoint(
            "price move",
            "/sim/price",
            {"pair": f"{NEW_TOKEN}/SOL", "move_bps": 10, "dex": "raydium"},
            operator=True,
        ),
        Endpoint("congestion", "/sim/congestion", {"level": 0.2, "duration_s": 0.5}, operator=True),
    ]


# What clients get wrong, or try: the cases first.
NASTY: list[object] = [
    None,
    True,
    0,
    -1,
    2**64,
    HUGE,
    1.5,
    -0.0,
    1e308,
    float("nan"),
    float("inf"),
    "1E+999999999",
    "1E+999999",
    "NaN",
    "Infinity",
    "-0",
    "",
    "\u0661\u0662",
    "x" * 10_000,
    [],
    {},
    {"level": []},
    [None, {}],
]
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["1E+999999999", "NaN", "Infinity", "-0", "1.5", "0", "SOL", "low", "raydium"])
    | st.just(HUGE),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)


def with_value(body: dict[str, Any], path: tuple[str | int, ...], value: object) -> bytes:
    """The body with `value` at `path`, as JSON text (a huge integer written as is)."""
    copy = json.loads(json.dumps(body))
    target = copy
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = "__HUGE__" if value is HUGE else value
    text = json.dumps(copy, allow_nan=True, default=lambda _: "__HUGE__")
    return text.replace('"__HUGE__"', HUGE_INTEGER).encode()


def check(client: httpx.Client, endpoint: Endpoint, path: tuple[str | int, ...], value: object) -> None:
    response = client.post(
        endpoint.path,
        content=with_value(endpoint.body, path, value),
        headers={"Content-Type": "application/json"},
    )
    where = f"{endpoint.name} {'.'.join(map(str, path))}={str(value)[:60]!r}"
    assert response.status_code < 500, f"{where} -> {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json"), where
        problem = response.json()
        assert problem["status"] == response.status_code and problem["code"], where


@pytest.fixture
async def fuzz_owner(infra: InfraUrls) -> str:
    return f"fuzz-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def trader(api_url: str, infra: InfraUrls, fuzz_owner: str) -> AsyncIterator[httpx.AsyncClient]:
    key = await create_test_key(infra.database_url, fuzz_owner)
    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=auth(key)) as client:
        yield client


async def test_any_json_in_any_field_of_any_post_body_is_answered_below_500(
    trader: httpx.AsyncClient, operator: httpx.AsyncClient, api_url: str, fuzz_owner: str
) -> None:
    listed = await operator.post(
        "/sim/pools", json={"token": NEW_TOKEN, "liquidity": "10", "price": "0.001", "activation_in_s": 0}
    )
    assert listed.status_code == 201, listed.text
    quote = await trader.post("/quotes", json={"token_in": "SOL", "token_out": "USDC", "amount": "0.01"})
    assert quote.status_code == 200, quote.text
    targets = endpoints(quote.json()["quote_id"], fuzz_owner)
    every_field = [(endpoint, path) for endpoint in targets for path in endpoint.fields()]
    for endpoint in targets:  # each base body is valid: what follows reaches every check
        response = await (operator if endpoint.operator else trader).post(endpoint.path, json=endpoint.body)
        assert response.status_code < 300, f"{endpoint.name}: {response.text}"

    def run() -> None:
        # Blocking clients in a thread: the API and the worker serve on the test's loop.
        with (
            httpx.Client(base_url=api_url, timeout=30, headers=trader.headers) as traders,
            httpx.Client(base_url=api_url, timeout=30, headers=auth(OPERATOR)) as operators,
        ):
            for endpoint, path in every_field:
                for value in NASTY:
                    check(operators if endpoint.operator else traders, endpoint, path, value)

            @hypothesis.settings(
                max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck)
            )
            @given(st.sampled_from(every_field), JSON)
            def any_value(field: tuple[Endpoint, tuple[str | int, ...]], value: object) -> None:
                endpoint, path = field
                check(operators if endpoint.operator else traders, endpoint, path, value)

            any_value()

    try:
        await asyncio.to_thread(run)
    finally:
        await operator.post("/sim/congestion", json={"level": 0.2, "duration_s": 0.001})
        for strategy in (await trader.get("/strategies", params={"limit": 200})).json()["items"]:
            await trader.post(f"/strategies/{strategy['strategy_id']}/cancel")
        for order in (await trader.get("/orders", params={"status": "WAITING", "limit": 200})).json()[
            "items"
        ]:
            await trader.post(f"/orders/{order['order_id']}/cancel")


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        ("/orders", {"priority_fee": {"level": []}}, "invalid_priority_fee"),
        ("/orders", {"priority_fee": {}}, "invalid_priority_fee"),
        ("/quotes", {"priority_fee": {"level": []}}, "invalid_priority_fee"),
        ("/quotes", {"priority_fee": {}}, "invalid_priority_fee"),
        (
            "/strategies",
            {"type": "twap", "slices": 2, "interval_s": 60, "limit_price": "1E+999999999"},
            "invalid_limit_price",
        ),
        (
            "/strategies",
            {"type": "twap", "slices": 2, "interval_s": 60, "limit_price": "1E+999999"},
            "invalid_limit_price",
        ),
        (
            "/strategies",
            {"type": "bracket", "take_profit_price": "1E+999999999", "stop_loss_price": "1"},
            "invalid_take_profit_price",
        ),
        (
            "/strategies",
            {"type": "bracket", "take_profit_price": "100000", "stop_loss_price": "1E-999999999"},
            "invalid_stop_loss_price",
        ),
    ],
)
async def test_the_reported_bodies_are_coded_refusals(
    trader: httpx.AsyncClient, path: str, body: dict[str, Any], code: str
) -> None:
    response = await trader.post(
        path, json={"token_in": "SOL", "token_out": "USDC", "amount": "0.01", **body}
    )
    assert is_problem(response, 422, code), response.text
