"""The engine's `worker` and `api` as real child processes, against infra that is
already running: what `order-engine dev`, the end-to-end tests, `make bench` and
`make chaos` start. Each runs in its own session and is stopped by its PID."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from accounts.local_key import create_key
from core.settings import SETTINGS_NAMES, Settings
from devstack.ports import HOST, choose_port
from devstack.urls import InfraUrls

ROOT = Path(__file__).resolve().parents[1]
# No simulated faults, no other traders, limits lifted: tests and benchmarks decide.
QUIET_MARKET = {
    "ORDER_ENGINE_SIM_FAILURE_RATE": "0",
    "ORDER_ENGINE_SIM_BACKGROUND_TRADES_PER_S": "0",
    "ORDER_ENGINE_ORDERS_PER_MINUTE": "60000",
}


@dataclass
class EngineProcess:
    name: str  # "worker", "api", "worker-2", …
    role: str
    process: subprocess.Popen[bytes]
    log: Path | None  # None: it writes to our stdout
    url: str | None = None  # the API's

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up (a crash)."""
        self.process.kill()
        self.process.wait()

    def pause(self) -> None:
        """SIGSTOP: it holds its connections but does nothing (a hung process)."""
        self.process.send_signal(signal.SIGSTOP)

    def terminate(self, timeout: float = 35) -> float:
        """SIGTERM (a paused process is woken to receive it); how long it took to exit.
        Killed, and TimeoutExpired raised, past `timeout`."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGCONT)
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        return time.monotonic() - started

    def log_tail(self, lines: int = 30) -> str:
        if self.log is None:
            return f"({self.name}: logs to the terminal)"
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return f"({self.name}: no log)"
        return f"--- last lines of {self.log}:\n" + "\n".join(text.splitlines()[-lines:])


@dataclass
class EngineProcesses:
    """Workers and APIs started against `infra` with `settings` (environment variables
    over ours); `stop()` ends every one it started."""

    infra: InfraUrls
    data_dir: Path
    settings: dict[str, str] = field(default_factory=dict)
    log_to_files: bool = True
    processes: list[EngineProcess] = field(default_factory=list)
    _operator_key: str | None = None

    def operator_key(self) -> str:
        """An operator key for these processes (made once), as an operator makes one
        with `order-engine keys create --operator`."""
        if self._operator_key is None:
            self._operator_key = self.new_key("engine-operator", operator=True)
        return self._operator_key

    def new_key(self, owner: str, operator: bool = False) -> str:
        """A new key for `owner`, under these processes' key secret."""
        settings = Settings.model_validate({k: v for k, v in self.env().items() if k in SETTINGS_NAMES})
        with ThreadPoolExecutor(1) as thread:  # callable from inside an event loop too
            return thread.submit(asyncio.run, create_key(settings, owner, operator=operator)).result()

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            **self.infra.as_env(),
            "ORDER_ENGINE_DATA_DIR": str(self.data_dir),
            **self.settings,
        }

    def start(
        self, role: str, port: int | None = None, host: str = HOST, wait: bool = True, **extra_env: str
    ) -> EngineProcess:
        """Start `worker` or `api` (on host:port, by default a free loopback port; ready
        before this returns unless `wait` is False)."""
        same_role = sum(p.role == role for p in self.processes)
        name = role if not same_role else f"{role}-{same_role + 1}"
        env = {**self.env(), **extra_env}
        url = None
        if role == "api":
            port = port or choose_port()
            env.update(ORDER_ENGINE_API_HOST=host, ORDER_ENGINE_API_PORT=str(port))
            url = f"http://{HOST if host in ('0.0.0.0', '::') else host}:{port}"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.data_dir / f"{name}.log" if self.log_to_files else None
        output = log.open("wb") if log is not None else None
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "cli", role],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT if output is not None else None,
                # Own session: a Ctrl-C meant for the caller does not reach them first.
                start_new_session=True,
            )
        finally:
            if output is not None:
                output.close()
        started = EngineProcess(name, role, process, log, url)
        self.processes.append(started)
        if url is not None and wait:
            self.wait_ready(started)
        return started

    def wait_ready(self, api: EngineProcess, timeout: float = 60) -> None:
        """Until the API's /health/ready answers 200 (Temporal, PostgreSQL and Redis reachable)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not api.running:
                raise RuntimeError(f"{api.name} exited with {api.process.returncode}\n{api.log_tail()}")
            try:
                if httpx.get(f"{api.url}/health/ready", timeout=2, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{api.url} not ready after {timeout:.0f}s\n{api.log_tail()}")

    def first(self, role: str) -> EngineProcess:
        """The first process of `role` started (and still listed)."""
        return next(p for p in self.processes if p.role == role)

    @property
    def api_url(self) -> str:
        url = self.first("api").url
        assert url is not None
        return url

    def start_all(self) -> None:
        """One worker and one API (ready)."""
        self.start("worker")
        self.start("api")

    def pids(self) -> dict[str, int]:
        return {p.name: p.pid for p in self.processes if p.running}

    def check_alive(self) -> None:
        for started in self.processes:
            if not started.running:
                raise RuntimeError(
                    f"{started.name} exited with {started.process.returncode}\n{started.log_tail()}"
                )

    def stop(self, timeout: float = 35) -> dict[str, float | None]:
        """SIGTERM every running one (APIs first), wait, SIGKILL what is left. Never
        raises. Returns name → seconds until it exited, None where it had to be killed."""
        running = [p for p in reversed(self.processes) if p.running]
        for started in running:
            started.process.send_signal(signal.SIGCONT)  # a paused process must be able to exit
            started.process.send_signal(signal.SIGTERM)
        began = time.monotonic()
        exited: dict[str, float | None] = {}
        for started in running:
            try:
                started.process.wait(max(began + timeout - time.monotonic(), 0.1))
                exited[started.name] = time.monotonic() - began
            except subprocess.TimeoutExpired:
                exited[started.name] = None
                print(started.log_tail(15), file=sys.stderr)
                started.kill()
        self.processes.clear()
        return exited
