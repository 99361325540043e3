"""The engine's `worker` and `api` as real child processes, stopped by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from core.api_keys import LOCAL_KEY_FILE
from devstack import InfraUrls
from devstack.ports import HOST, choose_port

REPO_ROOT = Path(__file__).resolve().parents[1]

# Simulated latencies 0, no faults, no background trading, limits lifted.
ENGINE_SETTINGS = {
    "ORDER_ENGINE_SIM_QUOTE_LATENCY_MS": "0",
    "ORDER_ENGINE_SIM_EXECUTION_LATENCY_MS": "0",
    "ORDER_ENGINE_SIM_FAILURE_RATE": "0",
    "ORDER_ENGINE_SIM_BACKGROUND_TRADES_PER_S": "0",
    "ORDER_ENGINE_ORDERS_PER_MINUTE": "1000000",
    "ORDER_ENGINE_MAX_CONCURRENT_ACTIVITIES": "100",
    "ORDER_ENGINE_LOG_LEVEL": "WARNING",
}


class EngineProcesses:
    """`python -m cli worker` and `python -m cli api` against the bench's infra."""

    def __init__(self, urls: InfraUrls, data_dir: Path, settings: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = choose_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.env = {
            **os.environ,
            **urls.as_env(),
            **(ENGINE_SETTINGS if settings is None else settings),
            "ORDER_ENGINE_DATA_DIR": str(data_dir),
            "ORDER_ENGINE_API_HOST": HOST,
            "ORDER_ENGINE_API_PORT": str(self.port),
        }
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def log_path(self, role: str) -> Path:
        return self.data_dir / f"{role}.log"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for role in ("worker", "api"):
            with self.log_path(role).open("wb") as log:
                # Own session: a Ctrl-C reaches only the bench, which then stops these in order.
                self.children[role] = subprocess.Popen(
                    [sys.executable, "-m", "cli", role],
                    cwd=REPO_ROOT,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )

    @property
    def api_key(self) -> str:
        """The operator key the API made on its first start (so no per-key limit applies)."""
        return (self.data_dir / LOCAL_KEY_FILE).read_text().strip()

    def pause(self, role: str) -> None:
        """SIGSTOP: the process holds its connections but does nothing (e.g. a worker, so
        that accepted orders pile up without executing)."""
        self.children[role].send_signal(signal.SIGSTOP)

    def pids(self) -> dict[str, int]:
        return {role: child.pid for role, child in self.children.items()}

    def wait_ready(self, timeout: float = 60) -> None:
        """Until GET /health/ready answers 200 (Temporal, PostgreSQL and Redis reachable)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if httpx.get(f"{self.base_url}/health/ready", timeout=2, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the API was not ready after {timeout:.0f}s\n{self.log_tail('api')}")

    def check_alive(self) -> None:
        for role, child in self.children.items():
            if child.poll() is not None:
                raise RuntimeError(f"{role} exited with {child.returncode}\n{self.log_tail(role)}")

    def log_tail(self, role: str, lines: int = 30) -> str:
        try:
            text = self.log_path(role).read_text(errors="replace")
        except OSError:
            return f"({role}: no log)"
        return f"--- last lines of {self.log_path(role)}:\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 30) -> dict[str, float | None]:
        """SIGTERM all, wait, then SIGKILL what is left. Idempotent; never raises.
        Returns role → seconds until it exited, None where it had to be killed."""
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGCONT)  # a paused process must be able to exit
                child.send_signal(signal.SIGTERM)
        started = time.monotonic()
        exited: dict[str, float | None] = {}
        for role, child in self.children.items():
            try:
                child.wait(max(started + timeout - time.monotonic(), 0.1))
                exited[role] = time.monotonic() - started
            except subprocess.TimeoutExpired:
                exited[role] = None
                print(self.log_tail(role, lines=15), file=sys.stderr)
                child.kill()
                child.wait()
        self.children.clear()
        return exited
