"""`make bench` as a list of sections: each declared once, with a time budget, every table
name that results and docs cite still reported by one of them, and the loop that runs
them within the budget."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from bench.__main__ import BUDGET_S, REPORT_ORDER, SECTIONS, _arguments, run
from bench.sections import Section, Workbench
from bench.stats import Figure
from bench.targets import TARGET_LIST, TARGETS

# The `section` of every figure in bench/results JSON and the table's first column, as
# docs/benchmarks.md, earlier results and the issue notes cite them: renaming one breaks
# every comparison with an earlier run.
CITED_TABLES = [
    "floor 1 at a time",
    "floor 30 in flight",
    "engine's shape, no-op steps, 1 at a time",
    "engine's shape, no-op steps, 30 in flight",
    "engine 1 at a time",
    "engine 30 in flight",
    "streaming, 50 orders at once",
    "streaming, one order at a time",
    "idle WebSockets",
    "spec limits: 200-order burst",
    "POST /orders at 200/s, worker paused",
    "router",
    "2000 waiting limit orders",
    "fair shares: another owner behind a 300-order flood",
    "300 never-filling limit orders waiting",
    "wallet conservation: 40 orders at once on two APIs",
    "landing time by fee level (400 ms slots)",
    "sandwiched public transactions, by size and slippage",
    "fee paid per confirmed order",
    "route planner, per order (genesis pools, exact-in and exact-out)",
    "POST /quotes, one at a time, simulated quote latency 0",
    "1000 waiting stop-loss and trailing-stop orders, 100 running TWAPs",
]
CITED_TARGETS = [
    "engine p50 ÷ floor p50",
    "engine orders/s ÷ floor workflows/s",
    "spec limits: orders/min",
    "spec limits: most in any 60 s",
    "POST /orders p99 at 200/s",
    "WebSocket delivery p99, 1 000 subscribed, orders one at a time",
    "WebSocket delivery p99, 1 000 subscribed, 50 orders at once",
    "API rss, 5 000 idle WebSockets",
    "another owner behind a 300-order flood, p50",
    "market p50 with 300 never-filling limits ÷ without",
    "a limit order made fillable fills within",
]


def test_every_section_has_a_unique_name_and_a_positive_time_budget() -> None:
    names = Counter(section.name for section in SECTIONS)
    assert [name for name, n in names.items() if n > 1] == []
    assert [section.name for section in SECTIONS if not section.needs_s > 0] == []


def test_every_table_belongs_to_one_section() -> None:
    tables = Counter(table for section in SECTIONS for table in section.tables)
    assert [table for table, n in tables.items() if n > 1] == []
    assert TARGETS not in tables
    assert all(section.tables for section in SECTIONS)


def test_the_tables_and_targets_that_results_cite_are_still_reported() -> None:
    declared = {table for section in SECTIONS for table in section.tables}
    assert [table for table in CITED_TABLES if table not in declared] == []
    assert [target.name for target in TARGET_LIST] == CITED_TARGETS


def test_the_report_order_names_only_listed_sections_once() -> None:
    assert len(set(map(id, REPORT_ORDER))) == len(REPORT_ORDER)
    assert [section.name for section in REPORT_ORDER if section not in SECTIONS] == []


def test_only_runs_the_named_sections_in_their_usual_order() -> None:
    _, sections = _arguments(["--only", "planner,router"])
    assert [section.name for section in sections] == ["router", "planner"]
    _, everything = _arguments([])
    assert everything == SECTIONS
    with pytest.raises(SystemExit):
        _arguments(["--only", "no-such-section"])


@pytest.fixture
def workbench() -> Iterator[Workbench]:
    workbench = Workbench()
    yield workbench
    workbench.close()


def _section(name: str, needs_s: float, ran: list[str], *, reserved: bool = False) -> Section:
    async def measure(workbench: Workbench) -> list[Figure]:
        ran.append(name)
        return [Figure(name, "one", 1.0)]

    return Section(name=name, tables=(name,), needs_s=needs_s, run=measure, reserved=reserved)


def test_a_section_that_no_longer_fits_is_skipped_and_the_reserved_one_after_it_runs(
    workbench: Workbench,
) -> None:
    ran: list[str] = []
    sections = [
        _section("fits", 10, ran),
        _section("too long with the reserved one", 200, ran),
        _section("reserved", 200, ran, reserved=True),
    ]
    # As if 500 s of the budget were gone: 500 + 200 + 200 kept > BUDGET_S, 500 + 200 is not.
    asyncio.run(run(sections, workbench, started=time.monotonic() - (BUDGET_S - 340)))
    assert ran == ["fits", "reserved"]
    assert [figure.section for figure in workbench.figures] == ["fits", "reserved"]
    assert any(note.startswith("too long with the reserved one: skipped") for note in workbench.notes)


def test_a_figure_of_an_undeclared_table_stops_the_run(workbench: Workbench) -> None:
    async def stray(workbench: Workbench) -> list[Figure]:
        return [Figure("not declared", "one", 1.0)]

    section = Section(name="stray", tables=("declared",), needs_s=1, run=stray)
    with pytest.raises(RuntimeError, match="undeclared"):
        asyncio.run(run([section], workbench, started=time.monotonic()))
