"""Postgres + Redis + Temporal together: what `make run` and the tests start."""

from __future__ import annotations

import atexit
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from devstack.postgres import EmbeddedPostgres
from devstack.process import ManagedProcess
from devstack.redis import EmbeddedRedis
from devstack.temporal import EmbeddedTemporal
from devstack.urls import InfraUrls

logger = logging.getLogger(__name__)


class EmbeddedStack:
    """Owns the three servers. Ports are chosen at construction and kept across restarts,
    so a test may stop() and start() one component and its URL stays valid."""

    def __init__(self, data_dir: Path, *, ui: bool = True, persistent: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.postgres = EmbeddedPostgres(self.data_dir)
        self.redis = EmbeddedRedis(self.data_dir)
        self.temporal = EmbeddedTemporal(self.data_dir, ui=ui, persistent=persistent)

    @property
    def components(self) -> list[ManagedProcess]:
        """In start order; stop() goes in reverse."""
        return [self.postgres, self.redis, self.temporal]

    @property
    def urls(self) -> InfraUrls:
        return InfraUrls(
            temporal_address=self.temporal.address,
            temporal_ui_url=self.temporal.ui_url,
            database_url=self.postgres.url,
            redis_url=self.redis.url,
        )

    def start(self) -> InfraUrls:
        """Start all three in parallel and wait until each accepts clients."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Safety net: children run in their own session and would outlive us otherwise.
        atexit.register(self.stop)
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="devstack") as pool:
            futures = [pool.submit(component.start) for component in self.components]
            errors = [exc for future in futures if (exc := future.exception()) is not None]
        if errors:
            self.stop()
            raise errors[0]
        logger.info("embedded stack ready in %.2fs", time.monotonic() - started)
        return self.urls

    def stop(self) -> None:
        """Stop whatever runs, Temporal first. Idempotent; never raises."""
        for component in reversed(self.components):
            component.stop()
        atexit.unregister(self.stop)

    def __enter__(self) -> EmbeddedStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
