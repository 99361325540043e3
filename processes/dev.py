"""`order-engine dev` (what `make run` runs): the embedded infra, migrations, the local
key, a worker and an API, in the foreground; Ctrl-C stops everything it started."""

from __future__ import annotations

import logging
import signal
import threading
import time
import urllib.request

from accounts.local_key import ensure_local_key
from core.settings import INFRA_ENV_FILE, Settings
from devstack import EmbeddedStack, InfraUrls, write_infra_env
from devstack.engine import EngineProcess, EngineProcesses
from devstack.ports import choose_port
from migrations import run_migrations

log = logging.getLogger("order_engine")


def run_dev(settings: Settings) -> None:
    data_dir = settings.data_dir.resolve()
    stack = EmbeddedStack(data_dir)
    engine: EngineProcesses | None = None
    try:
        # Servers named by TEMPORAL_ADDRESS / DATABASE_URL / REDIS_URL are used as they are;
        # embedded ones stand in for the rest.
        given = InfraUrls(settings.temporal_address, None, settings.database_url, settings.redis_url)
        if given.temporal_address and given.database_url and given.redis_url:
            urls = given
        else:
            embedded = stack.start()
            urls = InfraUrls(
                given.temporal_address or embedded.temporal_address,
                None if given.temporal_address else embedded.temporal_ui_url,
                given.database_url or embedded.database_url,
                given.redis_url or embedded.redis_url,
            )
        write_infra_env(data_dir / INFRA_ENV_FILE, urls)
        run_migrations(urls.database_url)
        ensure_local_key(
            settings.model_copy(update={"data_dir": data_dir, "database_url": urls.database_url})
        )
        worker_metrics = settings.worker_metrics_address or f"127.0.0.1:{choose_port()}"
        engine = EngineProcesses(
            urls,
            data_dir,
            {"ORDER_ENGINE_WORKER_METRICS_ADDRESS": worker_metrics},
            log_to_files=False,  # their logs are the terminal's
        )
        engine.start("worker")
        api = engine.start("api", port=choose_port(settings.api_port), host=settings.api_host, wait=False)
        _wait_for_api(api)
        print_infra(
            {**urls.as_env(), "WORKER_METRICS": f"http://{worker_metrics}/metrics"}, settings, api.url
        )
        _supervise(engine)
    finally:
        if engine is not None:
            engine.stop(timeout=30)
        stack.stop()


def _wait_for_api(api: EngineProcess) -> None:
    """Print the URLs once the API answers, so they work when the user sees them."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and api.running:
        try:
            urllib.request.urlopen(f"{api.url}/health/live", timeout=1)
            return
        except OSError:
            time.sleep(0.2)


def _supervise(engine: EngineProcesses) -> None:
    """Wait for Ctrl-C / SIGTERM, or for a child to die (then stop everything)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set():
        for started in engine.processes:
            if not started.running:
                log.error("%s exited with %s; stopping", started.name, started.process.returncode)
                return
        stop.wait(0.5)


def print_infra(env: dict[str, str], settings: Settings, api_url: str | None = None) -> None:
    lines = ["", "Order Engine infra is up:"]
    if api_url is not None:
        lines += [
            f"  API            {api_url}",
            f"  API key        in {settings.data_dir / 'api-key'} (Authorization: Bearer …)",
            f"  API docs       {api_url}/docs",
            f"  API metrics    {api_url}/metrics",
        ]
        if env.get("WORKER_METRICS"):
            lines.append(f"  Worker metrics {env['WORKER_METRICS']} (Temporal SDK)")
    if env.get("TEMPORAL_UI_URL"):
        lines.append(f"  Temporal UI    {env['TEMPORAL_UI_URL']}")
    lines += [
        f"  Temporal       {env['TEMPORAL_ADDRESS']}",
        f"  PostgreSQL     {env['DATABASE_URL']}",
        f"  Redis          {env['REDIS_URL']}",
        f"  (written to {settings.data_dir / INFRA_ENV_FILE}; Ctrl-C stops everything)",
        "",
    ]
    print("\n".join(lines), flush=True)
