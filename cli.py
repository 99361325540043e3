"""`order-engine`: run the embedded infra, migrations, the worker and the API."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import typer

from core.logs import configure_logging
from core.settings import INFRA_ENV_FILE, Settings, get_settings

app = typer.Typer(help="Order Engine: durable order execution for Solana DEX swaps.", no_args_is_help=True)
log = logging.getLogger("order_engine")


def run_migrations(database_url: str) -> None:
    """`alembic upgrade head` against `database_url`."""
    from alembic import command
    from alembic.config import Config

    import migrations

    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.attributes["database_url"] = database_url
    command.upgrade(config, "head")


def _wait_for_stop_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set():
        stop.wait(0.5)


@app.command()
def infra() -> None:
    """Start only the embedded Temporal (with Web UI), PostgreSQL and Redis."""
    from devstack import EmbeddedStack, write_infra_env

    configure_logging()
    settings = get_settings()
    stack = EmbeddedStack(settings.data_dir.resolve())
    try:
        urls = stack.start()
        write_infra_env(settings.data_dir / INFRA_ENV_FILE, urls)
        _print_infra(urls.as_env(), settings)
        _wait_for_stop_signal()
    finally:
        stack.stop()


@app.command()
def migrate() -> None:
    """Apply the database migrations (`alembic upgrade head`)."""
    configure_logging()
    run_migrations(get_settings().require_infra().database_url)


@app.command()
def worker() -> None:
    """Run the Temporal worker against existing infra."""
    import worker as worker_process

    worker_process.main()


@app.command()
def api() -> None:
    """Run the API (FastAPI under uvicorn) against existing infra."""
    import asyncio

    from api.app import create_app
    from api.server import api_server

    configure_logging()
    settings = get_settings().require_infra()
    asyncio.run(api_server(create_app(settings), settings.api_host, settings.api_port).serve())


@app.command()
def dev() -> None:
    """Embedded infra + migrations + worker + API, in the foreground; Ctrl-C stops all."""
    from devstack import EmbeddedStack, InfraUrls, write_infra_env

    configure_logging()
    settings = get_settings()
    data_dir = settings.data_dir.resolve()
    stack = EmbeddedStack(data_dir)
    children: list[subprocess.Popen[bytes]] = []
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
        env = {**os.environ, **urls.as_env(), "ORDER_ENGINE_DATA_DIR": str(data_dir)}
        for role in ("worker", "api"):
            children.append(subprocess.Popen([sys.executable, "-m", "cli", role], env=env))
        _wait_for_api(settings, children)
        _print_infra(urls.as_env(), settings, with_api=True)
        _supervise(children)
    finally:
        _stop_children(children)
        stack.stop()


def _wait_for_api(settings: Settings, children: list[subprocess.Popen[bytes]]) -> None:
    """Print the URLs once the API answers, so they work when the user sees them."""
    import urllib.request

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and all(child.poll() is None for child in children):
        try:
            urllib.request.urlopen(f"http://{settings.api_host}:{settings.api_port}/health/live", timeout=1)
            return
        except OSError:
            time.sleep(0.2)


def _supervise(children: list[subprocess.Popen[bytes]]) -> None:
    """Wait for Ctrl-C / SIGTERM, or for a child to die (then stop everything)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set():
        for child in children:
            if child.poll() is not None:
                log.error("%s exited with %s; stopping", child.args, child.returncode)
                return
        stop.wait(0.5)


def _stop_children(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    for child in children:
        try:
            child.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _print_infra(env: dict[str, str], settings: Settings, with_api: bool = False) -> None:
    lines = ["", "Order Engine infra is up:"]
    if with_api:
        api_url = f"http://{settings.api_host}:{settings.api_port}"
        lines += [f"  API            {api_url}", f"  API docs       {api_url}/docs"]
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


if __name__ == "__main__":
    app()
