"""The engine's `worker` and `api` as real child processes (end-to-end tests, chaos,
benchmarks), against infra that is already running; stopped by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from core.api_keys import LOCAL_KEY_FILE
from devstack import InfraUrls
from devstack.ports import choose_port

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class EngineProcess:
    role: str
    process: subprocess.Popen[bytes]
    log: Path
    url: str | None = None

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up (a crash)."""
        self.process.kill()
        self.process.wait()

    def terminate(self, timeout: float = 35) -> float:
        """SIGTERM; returns how long it took to exit."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        return time.monotonic() - started

    @property
    def running(self) -> bool:
        return self.process.poll() is None


@dataclass
class Engine:
    """Workers and APIs started against `infra`; stop() ends every one it started."""

    infra: InfraUrls
    data_dir: Path
    settings: dict[str, str] = field(default_factory=dict)
    processes: list[EngineProcess] = field(default_factory=list)

    @property
    def api_key(self) -> str:
        """The operator key the first API process made (`$ORDER_ENGINE_DATA_DIR/api-key`)."""
        return (self.data_dir / LOCAL_KEY_FILE).read_text().strip()

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            **self.infra.as_env(),
            "ORDER_ENGINE_DATA_DIR": str(self.data_dir),
            "ORDER_ENGINE_SIM_FAILURE_RATE": "0",
            "ORDER_ENGINE_SIM_BACKGROUND_TRADES_PER_S": "0",
            "ORDER_ENGINE_ORDERS_PER_MINUTE": "60000",
            **self.settings,
        }

    def start(self, role: str, **extra_env: str) -> EngineProcess:
        name = f"{role}-{len(self.processes)}"
        log = self.data_dir / f"{name}.log"
        env = {**self.env(), **extra_env}
        url = None
        if role == "api":
            port = choose_port()
            env["ORDER_ENGINE_API_PORT"] = str(port)
            url = f"http://127.0.0.1:{port}"
        with log.open("wb") as out:
            # Own session: a Ctrl-C meant for the caller does not reach them first.
            process = subprocess.Popen(
                [sys.executable, "-m", "cli", role],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started = EngineProcess(role, process, log, url)
        self.processes.append(started)
        if url is not None:
            self.wait_ready(started)
        return started

    def wait_ready(self, api: EngineProcess, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert api.running, api.log.read_text()
            try:
                if httpx.get(f"{api.url}/health/ready", timeout=2, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{api.url} not ready:\n{api.log.read_text()}")

    def stop(self) -> None:
        for started in reversed(self.processes):
            if started.running:
                try:
                    started.terminate()
                except subprocess.TimeoutExpired:
                    pass
