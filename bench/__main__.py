"""`python -m bench` (`make bench`): every section on one fresh embedded stack, loopback only.

The router and planner timings need no servers; then Temporal + PostgreSQL + Redis start
in a temp dir: the floor workflow; the engine's worker and API as real processes with
latencies 0 and limits lifted (one at a time, 30 in flight, 1 000 subscribed WebSockets,
thousands of waiting limit orders, 5 000 idle WebSockets, …); then the engine again at
the spec's limits with default latencies (a burst of orders), and POST /orders under load
with its worker paused; last, one owner's flood at the spec's rate. Prints a table and
writes bench/results/<UTC timestamp>.json and latest.json.

`python -m bench --only router,planner` runs some sections (their JSON: the stamped file
only); `--list` names them. A section is a `bench.sections.Section` in its own module.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
import traceback
from datetime import UTC, datetime
from typing import Any

from bench.chain import CHAIN_SECTION
from bench.conditional import CONDITIONAL_SECTION, PROTECTIVE_SECTION
from bench.engine import ENGINE_SECTION, LOAD_SECTION
from bench.floor import FLOOR_SECTION
from bench.landing import LANDING_SECTION
from bench.quotes import PLANNER_SECTION, QUOTES_SECTION
from bench.report import machine_facts, progress, table, write_json
from bench.routing import ROUTER_SECTION
from bench.sections import Section, Workbench
from bench.sharing import FAIR_SECTION, SHARING_SECTION
from bench.spec_limits import SPEC_SECTION
from bench.streaming import IDLE_SECTION, STREAMING_ONE_SECTION, STREAMING_SECTION
from bench.targets import TARGETS, target_figures
from bench.waiting import WAITING_SECTION

BUDGET_S = 840  # the whole run, infra start and teardown included (make bench: < 15 min)

# In the order they run. The engine sections share one engine; the spec's limits and the
# fair shares each get theirs. A section is skipped when its time, and that of the
# `reserved` sections after it, no longer fit in the budget.
SECTIONS = [
    ROUTER_SECTION,
    PLANNER_SECTION,
    FLOOR_SECTION,
    ENGINE_SECTION,
    STREAMING_SECTION,
    QUOTES_SECTION,
    WAITING_SECTION,
    IDLE_SECTION,
    STREAMING_ONE_SECTION,
    SHARING_SECTION,
    LANDING_SECTION,
    CONDITIONAL_SECTION,
    PROTECTIVE_SECTION,
    SPEC_SECTION,
    LOAD_SECTION,
    FAIR_SECTION,
    CHAIN_SECTION,
]
# The table's order, after the targets, as earlier reports printed it; a section not
# listed here prints after these, in the order it ran.
REPORT_ORDER = [
    FLOOR_SECTION,
    ENGINE_SECTION,
    STREAMING_SECTION,
    STREAMING_ONE_SECTION,
    IDLE_SECTION,
    SPEC_SECTION,
    LOAD_SECTION,
    ROUTER_SECTION,
    WAITING_SECTION,
    FAIR_SECTION,
    SHARING_SECTION,
    LANDING_SECTION,
    PLANNER_SECTION,
    QUOTES_SECTION,
    CONDITIONAL_SECTION,
    PROTECTIVE_SECTION,
]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _arguments(argv: list[str] | None) -> tuple[argparse.Namespace, list[Section]]:
    """The options, and the sections to run (in SECTIONS' order)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        metavar="NAME[,NAME…]",
        help="run only these sections, in their usual order: " + ", ".join(s.name for s in SECTIONS),
    )
    parser.add_argument("--list", action="store_true", help="list the sections and exit")
    arguments = parser.parse_args(argv)
    if arguments.only is None:
        return arguments, SECTIONS
    names = {name.strip() for name in arguments.only.split(",") if name.strip()}
    unknown = names - {s.name for s in SECTIONS}
    if unknown or not names:
        parser.error(
            f"unknown section(s) {', '.join(sorted(unknown))}; known: {', '.join(s.name for s in SECTIONS)}"
        )
    return arguments, [section for section in SECTIONS if section.name in names]


def describe(section: Section) -> str:
    needs = section.engine.name if section.engine else "servers" if section.infra else "no servers"
    return f"{section.name:14} {section.needs_s:4.0f}s  {needs:18} {' | '.join(section.tables)}"


def main(argv: list[str] | None = None) -> int:
    arguments, sections = _arguments(argv)
    if arguments.list:
        print("\n".join(describe(section) for section in SECTIONS))
        return 0
    partial = sections != SECTIONS
    # Ctrl-C even when started with SIGINT ignored (as `cmd &` does), and SIGTERM alike:
    # either way the finally below stops everything this run started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    started_at, started = datetime.now(UTC), time.monotonic()
    # Another process busy on this machine (a test run, say) skews every figure: record it.
    load_at_start = os.getloadavg()[0]
    workbench = Workbench()
    code = 0
    try:
        asyncio.run(run(sections, workbench, started))
        workbench.figures += target_figures(workbench.value, unmeasured=not partial)
    except KeyboardInterrupt:
        progress("interrupted; stopping what was started")
        code = 130
    except Exception:
        traceback.print_exc()
        workbench.print_engine_logs()
        code = 1
    finally:
        # A second Ctrl-C must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        workbench.close()

    duration = time.monotonic() - started
    order = [TARGETS, *(t for s in REPORT_ORDER for t in s.tables), *(t for s in sections for t in s.tables)]
    figures = sorted(workbench.figures, key=lambda f: order.index(f.section))
    if figures:
        print(table(figures))
        print("\n".join(f"note: {note}" for note in workbench.notes))
    if code == 0:
        machine = {**machine_facts(), "loadavg_1m_at_start": load_at_start}
        meta: dict[str, Any] = {
            "machine": machine,
            "parameters": parameters(sections),
            "notes": workbench.notes,
        }
        if partial:
            meta["sections"] = [section.name for section in sections]
        stamped, _ = write_json(started_at, duration, figures, meta, latest=not partial)
        progress(f"done in {duration:.0f}s; wrote {stamped}" + ("" if partial else " and latest.json"))
    return code


async def run(sections: list[Section], workbench: Workbench, started: float) -> None:
    """Each section in turn, on what it needs, while the budget allows."""
    for index, section in enumerate(sections):
        elapsed = time.monotonic() - started
        kept = sum(later.needs_s for later in sections[index + 1 :] if later.reserved)
        if elapsed + section.needs_s + kept > BUDGET_S:
            workbench.notes.append(
                f"{', '.join(section.tables)}: skipped, {elapsed:.0f}s of the {BUDGET_S}s budget already "
                f"used (it needs {section.needs_s:.0f}s, and {kept:.0f}s are kept for what follows)"
            )
            continue
        await asyncio.to_thread(workbench.prepare, section)
        figures = await section.run(workbench)
        undeclared = {figure.section for figure in figures} - set(section.tables)
        if undeclared:
            raise RuntimeError(f"section {section.name} reported undeclared tables {sorted(undeclared)}")
        workbench.figures += figures
        workbench.finished(section)


def parameters(sections: list[Section]) -> dict[str, Any]:
    return {key: value for section in sections for key, value in section.parameters.items()}


if __name__ == "__main__":
    exit_code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # A process that ran a Temporal worker may abort at interpreter exit (sdk-python#300).
    os._exit(exit_code)
