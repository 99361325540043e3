"""`order-engine`: run the embedded infra, migrations, the worker and the API."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

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
    settings = get_settings().require_infra()
    run_migrations(settings.database_url)
    ensure_local_key(settings)


def ensure_local_key(settings: Settings) -> None:
    """On the first run, an operator key for this machine's user: printed once and kept
    in $ORDER_ENGINE_DATA_DIR/api-key (mode 0600)."""
    import asyncio

    from core.api_keys import LOCAL_KEY_FILE, LOCAL_KEY_NAME

    path = settings.data_dir / LOCAL_KEY_FILE
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:  # exclusive: of two processes starting at once, one creates the key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        key = asyncio.run(_create_key(settings, LOCAL_KEY_NAME, operator=True))
    except BaseException:
        os.close(fd)
        path.unlink()
        raise
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    print(f"\nCreated a local operator API key (kept in {path}):\n  {key}\n", flush=True)


async def _create_key(settings: Settings, name: str, operator: bool) -> str:
    from storage.api_keys import create_key

    async with _database(settings) as sessions, sessions() as session:
        key, _ = await create_key(session, name, operator, settings.key_secret())
    return key


@contextlib.asynccontextmanager
async def _database(settings: Settings) -> Any:
    from storage.database import create_engine, create_sessionmaker

    engine = create_engine(settings.database_url, pool_size=2)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


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
    ensure_local_key(settings)
    server = api_server(
        create_app(settings),
        settings.api_host,
        settings.api_port,
        ws_ping_interval_s=settings.ws_ping_interval_s,
        ws_ping_timeout_s=settings.ws_ping_timeout_s,
    )
    asyncio.run(server.serve())


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
        ensure_local_key(
            settings.model_copy(update={"data_dir": data_dir, "database_url": urls.database_url})
        )
        from devstack.ports import choose_port

        worker_metrics = settings.worker_metrics_address or f"127.0.0.1:{choose_port()}"
        env = {
            **os.environ,
            **urls.as_env(),
            "ORDER_ENGINE_DATA_DIR": str(data_dir),
            "ORDER_ENGINE_WORKER_METRICS_ADDRESS": worker_metrics,
        }
        for role in ("worker", "api"):
            children.append(subprocess.Popen([sys.executable, "-m", "cli", role], env=env))
        _wait_for_api(settings, children)
        _print_infra(
            {**urls.as_env(), "WORKER_METRICS": f"http://{worker_metrics}/metrics"}, settings, with_api=True
        )
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


orders_app = typer.Typer(help="Operate on orders (talks to PostgreSQL and Temporal directly).")
keys_app = typer.Typer(help="API keys (talks to PostgreSQL directly).")
temporal_app = typer.Typer(help="Temporal cluster set-up.")
app.add_typer(orders_app, name="orders")
app.add_typer(keys_app, name="keys")
app.add_typer(temporal_app, name="temporal")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="who the key is for; owns the orders it places")],
    operator: Annotated[
        bool, typer.Option("--operator", help="may replay, drive /sim and read every owner")
    ] = False,
) -> None:
    """Create a key and print it (the last line); only its HMAC is stored, so keep it."""
    import asyncio

    from core.api_keys import NAME_PATTERN

    if not NAME_PATTERN.match(name):
        raise typer.BadParameter(
            "1–64 of a-z, 0-9, '_', '.', '-', starting with a letter or digit", param_hint="--name"
        )
    settings = get_settings().require_infra()
    key = asyncio.run(_create_key(settings, name, operator))
    typer.echo(f"{'operator' if operator else 'ordinary'} key for {name!r}; it is shown only now:")
    typer.echo(key)


@keys_app.command("list")
def keys_list() -> None:
    """Every key: public id, name, role, created, revoked."""
    import asyncio

    from storage.api_keys import list_keys

    async def main() -> None:
        async with _database(get_settings().require_infra()) as sessions, sessions() as session:
            rows = await list_keys(session)
        typer.echo(f"{'KEY ID':12} {'NAME':20} {'ROLE':9} {'CREATED':20} REVOKED")
        for row in rows:
            revoked = row.revoked_at.strftime("%Y-%m-%d %H:%M:%S") if row.revoked_at else "-"
            typer.echo(
                f"{row.id:12} {row.name:20} {'operator' if row.operator else 'ordinary':9} "
                f"{row.created_at.strftime('%Y-%m-%d %H:%M:%S'):20} {revoked}"
            )

    asyncio.run(main())


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="the key's id (oe_ + 8 characters) or the key")],
) -> None:
    """Revoke a key: refused by every API process within seconds."""
    import asyncio

    from core.api_keys import key_id as public_id
    from storage.api_keys import UnknownKey, revoke_key

    async def main() -> None:
        async with _database(get_settings().require_infra()) as sessions, sessions() as session:
            row = await revoke_key(session, public_id(key_id))
        typer.echo(f"{row.id} ({row.name}) revoked")

    try:
        asyncio.run(main())
    except UnknownKey:
        typer.echo(f"no key {public_id(key_id)}", err=True)
        raise typer.Exit(1) from None


@contextlib.asynccontextmanager
async def _operator_clients() -> Any:
    from core.temporal import connect_temporal
    from storage.database import create_engine, create_sessionmaker

    settings = get_settings().require_infra()
    engine = create_engine(settings.database_url, pool_size=2)
    try:
        temporal = await connect_temporal(settings.temporal_address, settings.temporal_namespace)
        yield create_sessionmaker(engine), temporal
    finally:
        await engine.dispose()


def _run(coroutine: Any) -> None:
    import asyncio

    from api.errors import DomainError

    code = 0
    try:
        asyncio.run(coroutine)
    except DomainError as error:
        typer.echo(f"{error.title}: {error.detail}", err=True)
        code = 1
    except typer.Exit as exit_:
        code = exit_.exit_code
    # A short-lived process that used a Temporal client can abort while the interpreter
    # tears down the SDK's Rust threads (temporalio/sdk-python#300): the work is done,
    # so leave without the teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@orders_app.command("stuck")
def orders_stuck(
    older_than: Annotated[str, typer.Option("--older-than", help="e.g. 30s, 5m, 2h")] = "5m",
) -> None:
    """Non-terminal orders (not WAITING) unchanged for longer than --older-than, with their workflow's state."""
    from api.operations import age_text, parse_duration, stuck_orders

    try:
        threshold = parse_duration(older_than)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None

    async def main() -> None:
        async with _operator_clients() as (sessions, temporal):
            stuck = await stuck_orders(sessions, temporal, threshold)
        if not stuck:
            typer.echo(f"no order stuck for more than {older_than}")
            return
        typer.echo(f"{'ORDER':32} {'STATUS':10} {'TYPE':7} {'STUCK FOR':>9}  WORKFLOW")
        for order in stuck:
            typer.echo(
                f"{order.order_id:32} {order.status:10} {order.type:7} {age_text(order.age):>9}  {order.workflow}"
            )

    _run(main())


@orders_app.command("replay")
def orders_replay(order_id: str) -> None:
    """Re-drive a stuck or failed order (reset or re-start its workflow); never executes twice."""
    from api.operations import replay_order

    async def main() -> None:
        async with _operator_clients() as (sessions, temporal):
            typer.echo(f"{order_id}: {await replay_order(sessions, temporal, order_id)}")

    _run(main())


@orders_app.command("cancel")
def orders_cancel(order_id: str) -> None:
    """Cancel an order that has not started executing."""
    from workflows.order import OrderWorkflow

    async def main() -> None:
        async with _operator_clients() as (_sessions, temporal):
            accepted = await temporal.get_workflow_handle(order_id).execute_update(OrderWorkflow.cancel)
        typer.echo(
            f"{order_id}: {'cancelled' if accepted else 'not cancellable: already executing or finished'}"
        )
        if not accepted:
            raise typer.Exit(1)

    _run(main())


@orders_app.command("show")
def orders_show(order_id: str) -> None:
    """The order's timeline: every event and failure, and what Temporal says of its workflow."""
    from api.operations import workflow_state
    from storage import orders as store

    async def main() -> None:
        async with _operator_clients() as (sessions, temporal):
            async with sessions() as session:
                order = await store.get_order(session, order_id)
                if order is None:
                    typer.echo(f"no order {order_id}", err=True)
                    raise typer.Exit(1)
                events = await store.list_events(session, order_id)
                failures = await store.list_failures(session, order_id)
            state = await workflow_state(temporal, order_id)
            history = await _history_summary(temporal, order_id) if state != "MISSING" else "no workflow"
        view = store.order_view(order)
        typer.echo(
            f"{order_id}  {order.type} {view['amount_in']} {order.token_in} → {order.token_out}  [{order.status}]"
        )
        typer.echo(f"  workflow: {state}   tx: {order.tx_hash or '-'}   attempts: {order.attempts}")
        typer.echo(f"  history: {history}")
        timeline = [(e.at, f"#{e.seq:<3} {e.status:10} {_describe(e.data)}") for e in events]
        timeline += [(f.created_at, f"  ✗  {f.activity} attempt {f.attempt}: {f.reason}") for f in failures]
        for at, line in sorted(timeline, key=lambda item: item[0]):
            typer.echo(f"  {at.strftime('%H:%M:%S.%f')[:-3]}  {line}")

    _run(main())


async def _history_summary(temporal: Any, order_id: str) -> str:
    """A line about the workflow's Temporal history: size, activities, failures, last event."""
    from collections import Counter

    from temporalio.api.enums.v1 import EventType

    history = await temporal.get_workflow_handle(order_id).fetch_history()
    kinds = Counter(EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in history.events)
    last = (
        EventType.Name(history.events[-1].event_type).removeprefix("EVENT_TYPE_") if history.events else "-"
    )
    return (
        f"{len(history.events)} events, {kinds['ACTIVITY_TASK_SCHEDULED']} activities"
        f" ({kinds['ACTIVITY_TASK_FAILED']} failed, {kinds['ACTIVITY_TASK_TIMED_OUT']} timed out),"
        f" {kinds['MARKER_RECORDED']} local activities, {kinds['WORKFLOW_TASK_FAILED']} workflow task failures;"
        f" last: {last}"
    )


def _describe(data: dict[str, Any]) -> str:
    if "retry" in data:
        retry = data["retry"]
        return f"retry of {retry['activity']} (attempt {retry['attempt']}) in {retry['backoff_ms']} ms: {retry['reason']}"
    keys = (
        "selected_dex",
        "min_amount_out",
        "tx_hash",
        "executed_price",
        "amount_out",
        "reason",
        "waiting_for",
        "replay",
    )
    return "  ".join(f"{k}={data[k]}" for k in keys if k in data)


@temporal_app.command("setup")
def temporal_setup() -> None:
    """Register the search attributes (OrderStatus, OrderType, SelectedDex, TokenPair) on an existing cluster."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest

    from core.temporal import SEARCH_ATTRIBUTE_KEYS, connect_temporal

    async def main() -> None:
        settings = get_settings().require_infra()
        temporal = await connect_temporal(settings.temporal_address, settings.temporal_namespace)
        existing = await temporal.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=temporal.namespace)
        )
        missing = {
            key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
            for key in SEARCH_ATTRIBUTE_KEYS
            if key.name not in existing.custom_attributes
        }
        if missing:
            await temporal.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=temporal.namespace, search_attributes=missing)
            )
        typer.echo(f"search attributes registered: {', '.join(k.name for k in SEARCH_ATTRIBUTE_KEYS)}")

    _run(main())


if __name__ == "__main__":
    app()
