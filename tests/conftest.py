"""Real servers for the tests: one embedded Temporal, PostgreSQL and Redis per session,
a worker and an API running in the test's event loop, on free loopback ports."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from core.settings import Settings
from core.temporal import SEARCH_ATTRIBUTE_KEYS
from devstack import EmbeddedStack, InfraUrls
from devstack.ports import choose_port
from devstack.temporal import DYNAMIC_CONFIG_ARGS, temporal_binary
from market import Market
from migrations import run_migrations
from processes.api import api_server
from processes.worker import running_workers
from tests.keys import ALICE, OPERATOR, TEST_KEY_SECRET, auth, install_test_keys


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfraUrls]:
    stack = EmbeddedStack(tmp_path_factory.mktemp("infra"), ui=False, persistent=False)
    try:
        urls = stack.start()
        run_migrations(urls.database_url)
        install_test_keys(urls.database_url)
        yield urls
    finally:
        stack.stop()


def make_settings(infra: InfraUrls, data_dir: Path, **overrides: object) -> Settings:
    """Fast, fault-free settings: the tests decide where faults happen."""
    values: dict[str, object] = {
        "ORDER_ENGINE_DATA_DIR": str(data_dir),
        "TEMPORAL_ADDRESS": infra.temporal_address,
        "DATABASE_URL": infra.database_url,
        "REDIS_URL": infra.redis_url,
        "ORDER_ENGINE_SIM_QUOTE_LATENCY_MS": 0,
        "ORDER_ENGINE_SIM_EXECUTION_LATENCY_MS": 0,
        "ORDER_ENGINE_SIM_FAILURE_RATE": 0,
        "ORDER_ENGINE_SIM_BACKGROUND_TRADES_PER_S": 0,
        "ORDER_ENGINE_ORDERS_PER_MINUTE": 60_000,
        "ORDER_ENGINE_SIM_SEED": 7,
        "ORDER_ENGINE_API_KEY_SECRET": TEST_KEY_SECRET,
        # The suite places far more orders a minute than one trader would: tests of the
        # per-key rate set it low on an API process of their own.
        "ORDER_ENGINE_ORDERS_PER_MINUTE_PER_KEY": 100_000,
        "ORDER_ENGINE_METRICS_CACHE_S": 0,  # metrics read as they stand
    }
    values.update({key: value for key, value in overrides.items()})
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def settings(infra: InfraUrls, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(infra, tmp_path_factory.mktemp("data"))


@contextlib.asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[Market]:
    async with running_workers(settings) as process:
        yield process.market


@pytest.fixture(scope="session")
async def worker(settings: Settings) -> AsyncIterator[Market]:
    async with running_worker(settings) as market:
        yield market


@contextlib.asynccontextmanager
async def running_api(settings: Settings) -> AsyncIterator[str]:
    port = choose_port()
    server = api_server(settings, "127.0.0.1", port, log_level="warning")
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="session")
async def api_url(settings: Settings) -> AsyncIterator[str]:
    async with running_api(settings) as url:
        yield url


@contextlib.asynccontextmanager
async def isolated_engine(infra: InfraUrls, data_dir: Path, **overrides: object) -> AsyncIterator[str]:
    """A worker and an API with their own settings, on their own Temporal dev server (so
    the session's worker never picks up their tasks); PostgreSQL and Redis are shared."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_binary()),
        search_attributes=SEARCH_ATTRIBUTE_KEYS,
        dev_server_extra_args=DYNAMIC_CONFIG_ARGS,
    )
    try:
        settings = make_settings(
            infra, data_dir, TEMPORAL_ADDRESS=env.client.service_client.config.target_host, **overrides
        )
        async with running_worker(settings), running_api(settings) as url:
            yield url
    finally:
        await env.shutdown()


@pytest.fixture
async def client(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An ordinary key's client (owner "alice")."""
    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=auth(ALICE)) as client:
        yield client


@pytest.fixture
async def operator(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An operator key's client: /sim/*, replay, every owner's orders."""
    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=auth(OPERATOR)) as client:
        yield client
