"""Readiness: anyone learns whether the API is ready, only an operator why it is not
(a dependency's error names its host, port and user)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from devstack import InfraUrls
from devstack.redis import EmbeddedRedis
from tests.conftest import make_settings, running_api
from tests.keys import ALICE, OPERATOR, auth


async def test_a_ready_api_says_ready_and_shows_its_checks_to_an_operator(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as anyone:
        ready = await anyone.get("/health/ready")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
        seen = await anyone.get("/health/ready", headers=auth(OPERATOR))
    assert seen.status_code == 200
    assert seen.json() == {"status": "ready", "checks": {"temporal": "ok", "postgres": "ok", "redis": "ok"}}


async def test_an_api_whose_redis_is_down_tells_callers_only_not_ready(
    infra: InfraUrls, tmp_path: Path
) -> None:
    redis = EmbeddedRedis(tmp_path / "redis")  # its own, to stop under a running API
    await asyncio.to_thread(redis.start)
    try:
        settings = make_settings(infra, tmp_path, REDIS_URL=redis.url)
        async with running_api(settings) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
            assert (await client.get("/health/ready")).status_code == 200
            await asyncio.to_thread(redis.stop)
            for headers in ({}, auth(ALICE), {"Authorization": "Bearer not-a-key"}):
                answer = await client.get("/health/ready", headers=headers)
                assert (answer.status_code, answer.json()) == (503, {"status": "not_ready"})
            seen = await client.get("/health/ready", headers=auth(OPERATOR))
    finally:
        await asyncio.to_thread(redis.stop)
    assert seen.status_code == 503
    checks = seen.json()["checks"]
    assert (checks["temporal"], checks["postgres"]) == ("ok", "ok")
    assert checks["redis"].startswith("error:") and str(redis.port) in checks["redis"]
