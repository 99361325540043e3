"""The layout is the architecture: each package imports only the layers below it, so a
domain never reaches into the API, activities never into workflows, and nothing imports
an entry point (cli.py, worker.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from contracts.failures import MarketErrorCode

ROOT = Path(__file__).parents[2]
# Each package and what it may import (besides itself), lowest first.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "contracts": {"core"},
    "storage": {"core"},
    "accounts": {"core", "storage"},
    "wallets": {"core", "contracts", "storage"},
    "market": {"core", "contracts", "storage", "wallets"},
    "onchain": {"core", "contracts", "storage", "wallets", "market"},
    "orders": {"core", "contracts", "storage", "accounts", "wallets", "market"},
    "strategies": {"core", "contracts", "storage", "accounts", "wallets", "market", "orders"},
    "composition": {
        "core",
        "contracts",
        "storage",
        "accounts",
        "wallets",
        "market",
        "onchain",
        "orders",
        "strategies",
    },
    "activities": {"core", "contracts", "storage", "accounts", "wallets", "market", "orders", "strategies"},
    "workflows": {"core", "contracts", "activities"},
    "api": {
        "core",
        "contracts",
        "storage",
        "accounts",
        "wallets",
        "market",
        "onchain",
        "orders",
        "strategies",
        "composition",
    },
    "devstack": {"core", "accounts"},
    "processes": {
        "core",
        "contracts",
        "storage",
        "accounts",
        "wallets",
        "market",
        "onchain",
        "orders",
        "strategies",
        "composition",
        "activities",
        "workflows",
        "api",
        "devstack",
        "migrations",
    },
    "migrations": {"core", "storage"},
}
ENTRY_POINTS = {"cli", "worker"}
OURS = set(ALLOWED) | ENTRY_POINTS | {"tests", "bench"}


def imported_packages(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names & OURS


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    wrong = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in (ROOT / package).rglob("*.py")
        for name in imported_packages(path) - ALLOWED[package] - {package}
    }
    assert not wrong, sorted(wrong)


def test_nothing_imports_an_entry_point() -> None:
    users = {
        str(path.relative_to(ROOT))
        for folder in (*ALLOWED, "tests", "bench")
        for path in (ROOT / folder).rglob("*.py")
        if imported_packages(path) & ENTRY_POINTS
    }
    assert not users, sorted(users)


def test_every_package_has_a_layer_and_is_in_the_image() -> None:
    packages = {
        path.parent.name for path in ROOT.glob("*/__init__.py") if path.parent.name not in ("tests", "bench")
    }
    assert packages - set(ALLOWED) == set(), "give the new package its layer in ALLOWED"
    copied = {
        line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("COPY ")
    }
    assert packages - copied == set(), "the Dockerfile must COPY every package"


def test_workflows_match_failure_codes_only_through_the_contracts_enum() -> None:
    """A failure code spelled as a string in a workflow drifts silently when a venue
    adapter renames or maps it; the enum in contracts/failures.py is the one spelling."""
    codes = {code.value for code in MarketErrorCode}
    spelled = {
        f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}"
        for path in (ROOT / "workflows").rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in codes
    }
    assert spelled == set(), "use contracts.failures.MarketErrorCode"


# What only the composition root calls: a process that built its own would hold a second
# engine, Redis client or market, and the real chain would need wiring in two places.
BUILDERS = {
    "build_market",
    "build_quotes",
    "build_placement",
    "build_strategies",
    "create_engine",
    "connect_redis",
}


def test_processes_build_their_services_only_through_the_composition_root() -> None:
    entry_points = [ROOT / f"{name}.py" for name in sorted(ENTRY_POINTS)]
    places = [*(ROOT / "api").rglob("*.py"), *(ROOT / "processes").rglob("*.py"), *entry_points]
    calls = {
        f"{path.relative_to(ROOT)}:{node.lineno} {name}"
        for path in places
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and (name := ast.unparse(node.func).split(".")[-1]) in BUILDERS
    }
    assert calls == set(), "build them in composition/ (built_services)"


def test_code_asks_the_order_types_table_not_the_type() -> None:
    """Order types as data: what a type waits for, takes and fires on is a row of
    core/order_kinds.py; code that compared `order.type is OrderType.X` would grow a
    branch per type in every file again."""
    compared = {
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for package in ALLOWED
        for path in (ROOT / package).rglob("*.py")
        if path != ROOT / "core" / "order_kinds.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Compare)
        and any("OrderType." in ast.unparse(side) for side in [node.left, *node.comparators])
    }
    assert compared == set(), "read core.order_kinds.kind_of(order_type) instead"


def _calls_of(names: set[str], folders: tuple[str, ...]) -> dict[str, set[str]]:
    """Where each of `names` is called (constructed), by file, in our packages."""
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and (name := ast.unparse(node.func).split(".")[-1]) in names:
                    found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def test_workflows_build_no_event_data() -> None:
    """A workflow reports typed steps; what an event says (its keys, its wording) is
    orders/transitions.py's and strategies/transitions.py's, so it changes without a
    change of workflow code (and without a patch)."""
    spelled = {
        f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)[:60]}"
        for path in (ROOT / "workflows").rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Dict)
        and any(isinstance(key, ast.Constant) and isinstance(key.value, str) for key in node.keys)
    }
    assert spelled == set(), "report a typed step (contracts/) and describe it in <domain>/transitions.py"


def test_strategy_events_are_described_only_in_strategies_transitions() -> None:
    """Every strategy event is stored from a StrategyChange, and only strategies/
    transitions.py makes one, from a typed step: StrategyRecord.of(step) is the way in,
    never a record spelling out an event and its data by hand."""
    production = tuple(name for name in ALLOWED if name != "migrations")
    calls = _calls_of({"StrategyChange", "StrategyPatch", "StrategyRecord"}, production)
    assert calls.get("StrategyChange", set()) <= {"strategies/transitions.py"}
    assert calls.get("StrategyPatch", set()) <= {"strategies/transitions.py"}
    assert calls.get("StrategyRecord", set()) <= {"contracts/strategies.py"}, "use StrategyRecord.of(step)"


# Owners' money has one home: a chain, a placement or a route that wrote these tables
# itself could promise a base unit twice or spend one without its reservation, and the
# real chain would have two places to keep in step.
MONEY_ROWS = {"Wallet", "WalletBalance", "Reservation"}
MONEY_HOMES = {"wallets", "storage", "migrations"}


def _money_row_uses(path: Path) -> set[str]:
    """Where `path` imports a wallet or reservation model from storage, or uses one
    other than in a type annotation (constructing, inserting, updating, querying)."""
    tree = ast.parse(path.read_text())
    annotations = {
        id(node)
        for owner in ast.walk(tree)
        for annotation in (
            [owner.returns] + [a.annotation for a in (*owner.args.args, *owner.args.kwonlyargs)]
            if isinstance(owner, ast.FunctionDef | ast.AsyncFunctionDef)
            else [owner.annotation]
            if isinstance(owner, ast.AnnAssign)
            else []
        )
        if annotation is not None
        for node in ast.walk(annotation)
    }
    uses = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "storage.models":
            uses |= {f"{node.lineno} imports {a.name}" for a in node.names if a.name in MONEY_ROWS}
        elif isinstance(node, ast.Name) and node.id in MONEY_ROWS and id(node) not in annotations:
            uses.add(f"{node.lineno} uses {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr in MONEY_ROWS and id(node) not in annotations:
            uses.add(f"{node.lineno} uses {ast.unparse(node)}")
    return uses


def test_only_the_wallets_package_touches_wallet_and_reservation_rows() -> None:
    touched = {
        f"{path.relative_to(ROOT)}:{use}"
        for package in sorted(set(ALLOWED) - MONEY_HOMES)
        for path in (ROOT / package).rglob("*.py")
        for use in _money_row_uses(path)
    }
    assert touched == set(), "go through wallets/repository.py (queries) or wallets/service.py"


def _repository_modules() -> list[Path]:
    return sorted(
        path
        for package in ALLOWED
        for path in (ROOT / package).rglob("*.py")
        if path.stem == "repository" or path.stem.endswith("_repository")
    )


def test_repositories_take_the_callers_session_and_never_open_one() -> None:
    """The caller owns the transaction: a query that opened its own session would
    commit apart from the rest of the caller's unit of work (a reservation apart from
    its order), and would need an `_in` twin to join one."""
    assert {path.parent.name for path in _repository_modules()} >= {"wallets", "orders", "market"}
    opened = {
        f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)[:60]}"
        for path in _repository_modules()
        for node in ast.walk(ast.parse(path.read_text()))
        if (isinstance(node, ast.Call) and ast.unparse(node.func).split(".")[-1].lstrip("_") == "sessions")
        or (
            isinstance(node, ast.Name)
            and node.id in {"async_sessionmaker", "AsyncEngine", "create_sessionmaker"}
        )
        or (isinstance(node, ast.Call) and ast.unparse(node.func) == "AsyncSession")
    }
    assert opened == set(), "take `session: AsyncSession` from the caller; services open sessions"
