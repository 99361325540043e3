"""Quotes and strategies cost a key its rate like orders do (quotes have a rate of their
own), and expired quotes do not pile up: the purge deletes the long-expired unused ones
and keeps the live, the just-expired and the used ones."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from devstack import InfraUrls
from market import build_market
from orders.quotes import QUOTE_PURGE_GRACE, build_quotes
from storage.database import create_engine, create_sessionmaker
from storage.models import Quote, utcnow
from storage.redis import RedisBreaker, connect_redis
from tests.conftest import make_settings, running_api
from tests.http import is_problem
from tests.keys import OPERATOR, auth, create_test_key

QUOTE = {"token_in": "SOL", "token_out": "USDC", "amount": "0.1"}
DCA = {"type": "dca", "token_in": "SOL", "token_out": "USDC", "amount_per_order": "0.01", "every": "1h"}


async def test_quotes_have_a_per_key_rate(infra: InfraUrls, tmp_path: Path) -> None:
    settings = make_settings(infra, tmp_path, ORDER_ENGINE_QUOTES_PER_MINUTE_PER_KEY=3)
    key = await create_test_key(infra.database_url, "quoter")
    async with running_api(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        answers = [
            (await client.post("/quotes", json=QUOTE, headers=auth(key))).status_code for _ in range(3)
        ]
        assert answers == [200] * 3
        refused = await client.post("/quotes", json=QUOTE, headers=auth(key))
        assert is_problem(refused, 429, "rate_limited") and 1 <= int(refused.headers["retry-after"]) <= 20
        assert (await client.post("/quotes", json=QUOTE, headers=auth(OPERATOR))).status_code == 200


@pytest.mark.usefixtures("worker")
async def test_strategies_count_against_the_keys_placement_rate(infra: InfraUrls, tmp_path: Path) -> None:
    settings = make_settings(infra, tmp_path, ORDER_ENGINE_ORDERS_PER_MINUTE_PER_KEY=2)
    key = await create_test_key(infra.database_url, "planner")
    async with (
        running_api(settings) as url,
        httpx.AsyncClient(base_url=url, timeout=30, headers=auth(key)) as client,
    ):
        started = [await client.post("/strategies", json=DCA) for _ in range(2)]
        assert [r.status_code for r in started] == [202, 202]
        refused = await client.post("/strategies", json=DCA)
        assert is_problem(refused, 429, "rate_limited") and "retry-after" in refused.headers
        # One budget for both: the strategies used the key's orders too.
        assert is_problem(await client.post("/orders", json={**QUOTE, "type": "market"}), 429, "rate_limited")
        assert len((await client.get("/strategies")).json()["items"]) == 2  # the refused one stored nothing
        for answer in started:
            await client.post(f"/strategies/{answer.json()['strategy_id']}/cancel")


async def test_the_purge_deletes_long_expired_unused_quotes_only(infra: InfraUrls, tmp_path: Path) -> None:
    settings = make_settings(infra, tmp_path)
    engine = create_engine(settings.database_url, pool_size=2)
    redis = connect_redis(settings.redis_url)
    try:
        sessions = create_sessionmaker(engine)
        now = utcnow()
        long_ago = now - QUOTE_PURGE_GRACE - timedelta(minutes=1)
        expiries = {
            "qte_purgetestlongexpired00000": (long_ago, None),
            "qte_purgetestjustexpired00000": (now - timedelta(minutes=1), None),
            "qte_purgetestlive000000000000": (now + timedelta(seconds=30), None),
            "qte_purgetestused000000000000": (long_ago, "ord_01J00000000000000000000000"),
        }
        async with sessions() as session, session.begin():
            for quote_id, (expires_at, used_by) in expiries.items():
                session.add(
                    Quote(
                        id=quote_id,
                        owner="purge-test",
                        request={},
                        answer={},
                        route={},
                        expires_at=expires_at,
                        used_by=used_by,
                        created_at=expires_at - timedelta(seconds=30),
                    )
                )
        quotes = build_quotes(
            settings, sessions, build_market(settings, sessions), redis, RedisBreaker(), None
        )
        await quotes.purge_expired()  # (an API process's own purge may have been first)
        async with sessions() as session:
            left = {quote_id for quote_id in expiries if await session.get(Quote, quote_id) is not None}
        assert left == {
            "qte_purgetestjustexpired00000",  # placing from it still says quote_expired
            "qte_purgetestlive000000000000",
            "qte_purgetestused000000000000",  # its order's
        }
    finally:
        await redis.aclose()
        await engine.dispose()
