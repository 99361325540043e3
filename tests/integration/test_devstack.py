"""The embedded stack really starts, serves, stops and keeps its data across restarts."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from devstack import (
    SEARCH_ATTRIBUTES,
    EmbeddedStack,
    InfraUrls,
    read_infra_env,
    write_infra_env,
)
from devstack.ports import is_port_free


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _plain_dsn(urls: InfraUrls) -> str:
    # asyncpg itself does not take SQLAlchemy's "+asyncpg" driver suffix.
    return urls.database_url.replace("+asyncpg", "")


async def _exercise_fresh_stack(urls: InfraUrls) -> None:
    conn = await asyncpg.connect(_plain_dsn(urls))
    try:
        assert await conn.fetchval("SELECT 1") == 1
        await conn.execute("CREATE TABLE survivor (name text PRIMARY KEY)")
        await conn.execute("INSERT INTO survivor VALUES ('before-restart')")
    finally:
        await conn.close()

    r = aioredis.from_url(urls.redis_url)
    try:
        assert await r.ping()
        await r.set("survivor", "before-restart")
    finally:
        await r.aclose()

    client = await Client.connect(urls.temporal_address)
    resp = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace="default")
    )
    for name in SEARCH_ATTRIBUTES:
        assert name in resp.custom_attributes, f"search attribute {name} not registered"


async def _check_data_survived(urls: InfraUrls) -> None:
    conn = await asyncpg.connect(_plain_dsn(urls))
    try:
        assert await conn.fetchval("SELECT name FROM survivor") == "before-restart"
    finally:
        await conn.close()

    r = aioredis.from_url(urls.redis_url)
    try:
        assert await r.get("survivor") == b"before-restart"
    finally:
        await r.aclose()

    await Client.connect(urls.temporal_address)


def test_stack_serves_stops_and_keeps_data_across_restart(tmp_path: Path) -> None:
    first = EmbeddedStack(tmp_path, ui=False)
    try:
        urls = first.start()
        assert urls.temporal_ui_url is None
        assert urls.database_url.startswith("postgresql+asyncpg://postgres@127.0.0.1:")
        assert urls.redis_url.startswith("redis://127.0.0.1:")
        assert urls.temporal_address.startswith("127.0.0.1:")
        asyncio.run(_exercise_fresh_stack(urls))
        pids = [c.pid for c in first.components]
        assert all(pid is not None for pid in pids)
    finally:
        first.stop()
    first.stop()  # idempotent

    assert all(c.pid is None for c in first.components)
    assert not any(_alive(pid) for pid in pids if pid is not None)

    # A second run on the same data dir, as a second `make run` would do.
    second = EmbeddedStack(tmp_path, ui=False)
    try:
        asyncio.run(_check_data_survived(second.start()))
    finally:
        second.stop()
    assert all(c.pid is None for c in second.components)


def test_redis_restart_alone_keeps_its_port(tmp_path: Path) -> None:
    with EmbeddedStack(tmp_path, ui=False) as stack:
        before = stack.urls
        old_pid = stack.redis.pid
        assert old_pid is not None

        stack.redis.stop()
        assert stack.redis.pid is None
        assert not _alive(old_pid)
        assert is_port_free(stack.redis.port)

        stack.redis.start()
        assert stack.redis.pid not in (None, old_pid)
        assert stack.urls == before

        async def ping() -> bool:
            r = aioredis.from_url(stack.urls.redis_url)
            try:
                return bool(await r.ping())
            finally:
                await r.aclose()

        assert asyncio.run(ping())
    assert all(c.pid is None for c in stack.components)


def test_infra_env_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "run" / "infra.env"
    assert read_infra_env(path) == {}
    urls = InfraUrls(
        temporal_address="127.0.0.1:7233",
        temporal_ui_url=None,
        database_url="postgresql+asyncpg://postgres@127.0.0.1:5433/postgres",
        redis_url="redis://127.0.0.1:6390/0",
    )
    write_infra_env(path, urls)
    assert read_infra_env(path) == urls.as_env()
    assert "TEMPORAL_UI_URL" not in read_infra_env(path)
    assert [p.name for p in path.parent.iterdir()] == ["infra.env"]  # no temp file left
