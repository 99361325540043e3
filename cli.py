"""`order-engine`: the commands. Each is a few lines over what it runs (processes/) or
the domain service it calls (accounts/, orders/, strategies/)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from core.logs import configure_logging
from core.settings import INFRA_ENV_FILE, get_settings

if TYPE_CHECKING:  # the commands import what they use, so that --help stays quick
    from solders.keypair import Keypair

    from composition import Services
    from wallets.custody import KeypairSeal

app = typer.Typer(help="Order Engine: durable order execution for Solana DEX swaps.", no_args_is_help=True)
orders_app = typer.Typer(help="Operate on orders (talks to PostgreSQL and Temporal directly).")
strategies_app = typer.Typer(help="Operate on strategies (talks to PostgreSQL and Temporal directly).")
keys_app = typer.Typer(help="API keys (talks to PostgreSQL directly).")
temporal_app = typer.Typer(help="Temporal cluster set-up.")
venues_app = typer.Typer(
    help="The venues of the real chain (ORDER_ENGINE_VENUES_FILE, over ORDER_ENGINE_RPC_URL)."
)
wallets_app = typer.Typer(
    help="Owners' own keypairs for the real chain, held sealed with ORDER_ENGINE_WALLET_KEY "
    "(talks to PostgreSQL directly)."
)
app.add_typer(orders_app, name="orders")
app.add_typer(strategies_app, name="strategies")
app.add_typer(keys_app, name="keys")
app.add_typer(temporal_app, name="temporal")
app.add_typer(venues_app, name="venues")
app.add_typer(wallets_app, name="wallets")


@app.command()
def infra() -> None:
    """Start only the embedded Temporal (with Web UI), PostgreSQL and Redis."""
    from devstack import EmbeddedStack, write_infra_env
    from processes.dev import print_infra

    configure_logging()
    settings = get_settings()
    stack = EmbeddedStack(settings.data_dir.resolve())
    try:
        urls = stack.start()
        write_infra_env(settings.data_dir / INFRA_ENV_FILE, urls)
        print_infra(urls.as_env(), settings)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        while not stop.wait(0.5):
            pass
    finally:
        stack.stop()


@app.command()
def migrate() -> None:
    """Apply the database migrations (`alembic upgrade head`)."""
    from migrations import run_migrations

    configure_logging()
    run_migrations(get_settings().require_infra().database_url)


@app.command()
def worker() -> None:
    """Run the Temporal worker against existing infra."""
    from processes.worker import main

    main()


@app.command()
def api() -> None:
    """Run the API (FastAPI under uvicorn) against existing infra."""
    from processes.api import serve_api

    configure_logging()
    serve_api(get_settings().require_infra())


@app.command()
def dev() -> None:
    """Embedded infra + migrations + worker + API, in the foreground; Ctrl-C stops all."""
    from processes.dev import run_dev

    configure_logging()
    run_dev(get_settings())


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="who the key is for; owns the orders it places")],
    operator: Annotated[
        bool, typer.Option("--operator", help="may replay, drive /sim and read every owner")
    ] = False,
) -> None:
    """Create a key and print it (the last line); only its HMAC is stored, so keep it."""
    from accounts.keys import NAME_PATTERN
    from accounts.local_key import create_key

    if not NAME_PATTERN.fullmatch(name):
        raise typer.BadParameter(
            "1–64 of a-z, 0-9, '_', '.', '-', starting with a letter or digit", param_hint="--name"
        )
    key = asyncio.run(create_key(get_settings().require_infra(), name, operator))
    typer.echo(f"{'operator' if operator else 'ordinary'} key for {name!r}; it is shown only now:")
    typer.echo(key)


@keys_app.command("list")
def keys_list() -> None:
    """Every key: public id, name, role, created, revoked."""

    async def main() -> None:
        async with _clients(temporal=False) as clients:
            rows = await clients.keys.all()
        typer.echo(f"{'KEY ID':12} {'NAME':20} {'ROLE':9} {'CREATED':20} REVOKED")
        for row in rows:
            revoked = row.revoked_at.strftime("%Y-%m-%d %H:%M:%S") if row.revoked_at else "-"
            typer.echo(
                f"{row.id:12} {row.name:20} {'operator' if row.operator else 'ordinary':9} "
                f"{row.created_at.strftime('%Y-%m-%d %H:%M:%S'):20} {revoked}"
            )

    _run(main())


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="the key's id (oe_ + 8 characters) or the key")],
    cancel_open: Annotated[
        bool,
        typer.Option(
            "--cancel-open",
            help="also cancel its owner's running strategies, then its orders not yet executing",
        ),
    ] = False,
) -> None:
    """Revoke a key: refused by every API process within seconds. What its owner has
    running goes on unless --cancel-open (strategies and orders belong to the owner)."""
    from accounts.keys import CLI_OPERATOR
    from accounts.keys import key_id as public_id

    async def main() -> None:
        async with _clients(temporal=cancel_open) as clients:
            row = await clients.keys.revoke(public_id(key_id))
            typer.echo(f"{row.id} ({row.name}) revoked")
            if not cancel_open:
                return
            # Strategies first: a strategy still running could place another order.
            strategies, unreachable = await clients.workflows.strategies.cancel_all(CLI_OPERATOR, row.name)
            cancelled, executing = await clients.workflows.orders.cancel_waiting(CLI_OPERATOR, row.name)
        typer.echo(
            f"{row.name}: {len(strategies)} strategies cancelled, {len(cancelled)} orders cancelled"
            f" ({len(executing)} already executing or ended: they finish)"
        )
        if unreachable:
            typer.echo(f"not answering now, run this again: {' '.join(unreachable)}", err=True)
            raise typer.Exit(1)

    _run(main())


@orders_app.command("stuck")
def orders_stuck(
    older_than: Annotated[str, typer.Option("--older-than", help="e.g. 30s, 5m, 2h")] = "5m",
) -> None:
    """Non-terminal orders (not WAITING) unchanged for longer than --older-than, with their workflow's state."""
    from core.durations import format_age, parse_duration

    try:
        threshold = parse_duration(older_than)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None

    async def main() -> None:
        async with _clients() as clients:
            stuck = await clients.workflows.orders.stuck(threshold)
        if not stuck:
            typer.echo(f"no order stuck for more than {older_than}")
            return
        typer.echo(f"{'ORDER':32} {'STATUS':10} {'TYPE':7} {'STUCK FOR':>9}  WORKFLOW")
        for o in stuck:
            typer.echo(f"{o.order_id:32} {o.status:10} {o.type:7} {format_age(o.age):>9}  {o.workflow}")

    _run(main())


@orders_app.command("replay")
def orders_replay(order_id: str) -> None:
    """Re-drive a stuck or failed order (reset or re-start its workflow); never executes twice."""
    from accounts.keys import CLI_OPERATOR

    async def main() -> None:
        async with _clients() as clients:
            typer.echo(f"{order_id}: {await clients.workflows.orders.replay(CLI_OPERATOR, order_id)}")

    _run(main())


@orders_app.command("cancel")
def orders_cancel(order_id: str) -> None:
    """Cancel an order that has not started executing."""
    from accounts.keys import CLI_OPERATOR

    async def main() -> None:
        async with _clients() as clients:
            await clients.workflows.orders.cancel(CLI_OPERATOR, order_id)
        typer.echo(f"{order_id}: cancelled")

    _run(main())


@orders_app.command("show")
def orders_show(order_id: str) -> None:
    """The order's timeline: every event and failure, and what Temporal says of its workflow."""
    from accounts.keys import CLI_OPERATOR
    from orders.terminal import describe_history

    async def main() -> None:
        async with _clients() as clients:
            history = await clients.workflows.orders.history(CLI_OPERATOR, order_id)
        typer.echo(describe_history(history))

    _run(main())


@strategies_app.command("list")
def strategies_list(
    status: Annotated[str | None, typer.Option("--status", help="RUNNING, PAUSED, COMPLETED, …")] = None,
    owner: Annotated[str | None, typer.Option("--owner")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 50,
) -> None:
    """Strategies, newest first, with their progress."""
    from accounts.keys import CLI_OPERATOR
    from core.domain import StrategyStatus

    try:
        wanted = StrategyStatus(status.upper()) if status else None
    except ValueError:
        raise typer.BadParameter(f"--status must be one of {', '.join(StrategyStatus)}") from None

    async def main() -> None:
        async with _clients() as clients:
            page = await clients.workflows.strategies.page(
                CLI_OPERATOR, owner=owner, status=wanted, cursor=None, limit=limit
            )
        if not page.items:
            typer.echo("no strategies")
            return
        typer.echo(f"{'STRATEGY':32} {'TYPE':8} {'STATUS':10} {'OWNER':16} {'ORDERS':>6} {'FILLED':>7}  PAIR")
        for s in page.items:
            p = s.progress
            typer.echo(
                f"{s.strategy_id:32} {s.type:8} {s.status:10} {s.owner:16} {p.orders_placed:>6} "
                f"{p.orders_confirmed:>7}  {s.token_in}/{s.token_out}"
            )

    _run(main())


@strategies_app.command("show")
def strategies_show(strategy_id: str) -> None:
    """The strategy, its progress, its orders and its events."""
    from accounts.keys import CLI_OPERATOR

    async def main() -> None:
        async with _clients() as clients:
            view = await clients.workflows.strategies.get(CLI_OPERATOR, strategy_id)
            events = await clients.workflows.strategies.events(CLI_OPERATOR, strategy_id)
        typer.echo(view.model_dump_json(indent=2))
        for e in events.items:
            detail = " ".join(f"{k}={v}" for k, v in e.data.items()) if e.event != "created" else ""
            typer.echo(f"{e.seq:>4} {e.at} {e.status:10} {e.event:14} {detail}")

    _run(main())


@strategies_app.command("cancel")
def strategies_cancel(strategy_id: str) -> None:
    """Stop a strategy's future orders (one already executing finishes)."""
    from accounts.keys import CLI_OPERATOR
    from core.domain import StrategyAction

    async def main() -> None:
        async with _clients() as clients:
            answer = await clients.workflows.strategies.act(CLI_OPERATOR, strategy_id, StrategyAction.CANCEL)
        if answer.status.is_terminal:  # its workflow was gone: ended here
            typer.echo(f"{strategy_id}: {answer.status} (its workflow was gone; its Schedule is deleted)")
        else:
            typer.echo(f"{strategy_id}: cancel asked; it ends once its executing order does")

    _run(main())


OwnerOption = Annotated[str, typer.Option("--owner", help="the owner (an API key's name) it signs for")]


@wallets_app.command("import")
def wallets_import(
    owner: OwnerOption,
    keypair: Annotated[
        Path, typer.Option("--keypair", help="the Solana CLI's keypair file: a JSON array of 64 bytes")
    ],
) -> None:
    """Hold an owner's existing keypair (sealed; the file is not needed afterwards) and
    print its address. An owner's wallet is never replaced."""
    from wallets.custody import parse_keypair_json
    from wallets.errors import InvalidKeypair

    seal = _keypair_seal(owner)
    try:
        text = keypair.read_text()
    except (OSError, UnicodeDecodeError) as error:
        typer.echo(
            f"Invalid keypair: cannot read {keypair}: {getattr(error, 'strerror', None) or 'not text'}",
            err=True,
        )
        raise typer.Exit(1) from None
    try:
        parsed = parse_keypair_json(text)
    except InvalidKeypair as error:
        typer.echo(f"{error.title}: {keypair}: {error.detail}", err=True)
        raise typer.Exit(1) from None
    _run(_hold(owner, parsed, seal))


@wallets_app.command("create")
def wallets_create(owner: OwnerOption) -> None:
    """Make a new keypair for the owner, held sealed, and print its address only (fund
    it there). Its secret is never shown: keep ORDER_ENGINE_WALLET_KEY and the database."""
    from solders.keypair import Keypair

    seal = _keypair_seal(owner)
    _run(_hold(owner, Keypair(), seal))


def _keypair_seal(owner: str) -> KeypairSeal:
    """The seal of ORDER_ENGINE_WALLET_KEY (exit 1 with why when it is unset or invalid),
    once the owner's name is valid."""
    from accounts.keys import NAME_PATTERN
    from wallets.custody import KeypairSeal, WalletKeyMissing

    if not NAME_PATTERN.fullmatch(owner):
        raise typer.BadParameter(
            "1–64 of a-z, 0-9, '_', '.', '-', starting with a letter or digit", param_hint="--owner"
        )
    try:
        return KeypairSeal.from_settings(get_settings())
    except WalletKeyMissing as error:
        typer.echo(f"Refused: {error}", err=True)
        raise typer.Exit(1) from None


async def _hold(owner: str, keypair: Keypair, seal: KeypairSeal) -> None:
    from wallets.service import Wallets

    async with _clients(temporal=False) as clients:
        address = await Wallets(clients.sessions, {}, seal=seal).hold(owner, keypair)
    typer.echo(address)


@temporal_app.command("setup")
def temporal_setup() -> None:
    """Register the search attributes (OrderStatus, OrderType, SelectedDex, TokenPair) on an existing cluster."""
    from core.temporal import SEARCH_ATTRIBUTE_KEYS, connect_temporal, register_search_attributes

    async def main() -> None:
        settings = get_settings().require_infra()
        await register_search_attributes(
            await connect_temporal(settings.temporal_address, settings.temporal_namespace)
        )
        typer.echo(f"search attributes registered: {', '.join(k.name for k in SEARCH_ATTRIBUTE_KEYS)}")

    _run(main())


@venues_app.command("check")
def venues_check() -> None:
    """Load the venues file, fetch every pool from the cluster and print what was found
    (pair, venue, price, liquidity, fee) or why a pool cannot be traded; exit 1 if any."""
    from onchain.cluster import render_report, venues_report
    from onchain.market import chain_pools
    from onchain.rpc import ClusterRefused
    from onchain.venues_file import VenuesFileError

    async def main() -> None:
        settings = get_settings()
        if not settings.rpc_url or settings.venues_file is None:
            typer.echo("set ORDER_ENGINE_RPC_URL and ORDER_ENGINE_VENUES_FILE", err=True)
            raise typer.Exit(2)
        try:
            pools, venues, rpc = chain_pools(settings)
        except VenuesFileError as error:
            typer.echo(f"the venues file does not load: {error}", err=True)
            raise typer.Exit(1) from None
        try:
            report = await venues_report(pools, venues, rpc, settings.allow_mainnet)
        except ClusterRefused as error:
            typer.echo(str(error), err=True)
            raise typer.Exit(1) from None
        finally:
            await rpc.close()
        typer.echo(render_report(report))
        if not report.ok:
            raise typer.Exit(1)

    _run(main())


@contextlib.asynccontextmanager
async def _clients(temporal: bool = True) -> AsyncIterator[Services]:
    """What an operator command talks to: the services every process builds, small (two
    connections, planning inline), and on Temporal unless the command needs it not."""
    from composition import built_services
    from core.temporal import connect_temporal

    settings = get_settings().require_infra()
    client = (
        await connect_temporal(settings.temporal_address, settings.temporal_namespace) if temporal else None
    )
    async with built_services(
        settings, client, pool_size=2, planning_threads=0, ensure_market=False
    ) as services:
        yield services


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run an operator command: a domain error is printed (exit 1), not a traceback."""
    from core.errors import DomainError

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


if __name__ == "__main__":
    app()
