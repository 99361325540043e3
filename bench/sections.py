"""What a section of `make bench` is, and the workbench it runs on.

A section is a value: its name, the table sections (`Figure.section`) it reports, how
long it needs, what it needs started (the embedded servers; an engine with given
settings) and its `run`. Its constants and figure names live in the module that
measures it; `bench/__main__.py` lists the sections in the order they run.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cpu import CpuMeter
from bench.report import progress
from bench.stats import Figure
from devstack import EmbeddedStack, InfraUrls
from devstack.engine import EngineProcesses
from migrations import run_migrations


@dataclass(frozen=True)
class EngineSpec:
    """An engine (one worker, one API) started with these settings over ours; sections
    asking for the same spec in a row share one."""

    name: str  # its data directory, and how notes name it
    settings: Mapping[str, str]


@dataclass(frozen=True)
class Section:
    name: str  # what `python -m bench --only` takes
    tables: tuple[str, ...]  # every `Figure.section` its figures carry
    needs_s: float  # its own run, start to end; the budget check counts it
    run: Callable[[Workbench], Awaitable[list[Figure]]]
    infra: bool = False  # Temporal, PostgreSQL and Redis (implied by `engine`)
    engine: EngineSpec | None = None
    # Sections before it leave its `needs_s` free in the budget (the spec's limits).
    reserved: bool = False
    # It leaves its engine unfit for another section (a paused worker): the next gets a new one.
    spoils_engine: bool = False
    parameters: Mapping[str, Any] = field(default_factory=dict)  # into the JSON's "parameters"

    @property
    def needs_infra(self) -> bool:
        return self.infra or self.engine is not None


class Workbench:
    """What a section runs on: the embedded servers and the engine it asked for (started
    on first need, an engine replaced when a section asks for other settings), the figures
    so far (a later section may compare with an earlier one's) and the run's notes."""

    def __init__(self) -> None:
        self.figures: list[Figure] = []
        self.notes: list[str] = []
        # Orders an earlier section left WAITING far from their limit (the waiting
        # section's), for a later one to subscribe to.
        self.waiting_order_ids: list[str] = []
        self._tmp = Path(tempfile.mkdtemp(prefix="order-engine-bench-"))
        self._stack = EmbeddedStack(self._tmp / "infra", ui=False, persistent=False)
        self._urls: InfraUrls | None = None
        self._engine: EngineProcesses | None = None
        self._engine_spec: EngineSpec | None = None

    @property
    def urls(self) -> InfraUrls:
        if self._urls is None:
            raise RuntimeError("this section did not ask for the servers (Section.infra)")
        return self._urls

    @property
    def engine(self) -> EngineProcesses:
        if self._engine is None:
            raise RuntimeError("this section did not ask for an engine (Section.engine)")
        return self._engine

    @property
    def server_pids(self) -> dict[str, int]:
        servers = {
            "temporal": self._stack.temporal.pid,
            "postgres": self._stack.postgres.pid,
            "redis": self._stack.redis.pid,
        }
        return {name: pid for name, pid in servers.items() if pid is not None}

    def meter(self) -> CpuMeter:
        """The engine's processes, the servers and this one (the bench's client)."""
        return CpuMeter({**self.engine.pids(), **self.server_pids, "bench (client)": os.getpid()})

    def value(self, table: str, metric: str) -> float:
        """An earlier figure (the first of `table` whose metric starts with `metric`); NaN if none."""
        for figure in self.figures:
            if (
                figure.section == table
                and figure.metric.startswith(metric)
                and isinstance(figure.value, float | int)
            ):
                return float(figure.value)
        return float("nan")

    def directory(self, name: str) -> Path:
        """A scratch directory of this run's (removed with it)."""
        path = self._tmp / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def prepare(self, section: Section) -> None:
        """Start what `section` needs and is not running yet (blocking: call it in a thread)."""
        if section.needs_infra and self._urls is None:
            progress("starting embedded Temporal, PostgreSQL, Redis …")
            self._urls = self._stack.start()
            run_migrations(self._urls.database_url)
        if section.engine is not None and section.engine != self._engine_spec:
            self.stop_engine()
            progress(f"starting the engine's worker and API ({section.engine.name}) …")
            self._engine = EngineProcesses(
                self.urls, self._tmp / section.engine.name, dict(section.engine.settings)
            )
            self._engine_spec = section.engine
            self._engine.start_all()

    def finished(self, section: Section) -> None:
        if section.spoils_engine:
            self.stop_engine()

    def stop_engine(self) -> dict[str, float | None]:
        """Stop the running engine (if any); name → seconds until it exited, None if killed."""
        engine, self._engine, self._engine_spec = self._engine, None, None
        return engine.stop() if engine is not None else {}

    def print_engine_logs(self) -> None:
        if self._engine is not None:
            for process in self._engine.processes:
                print(process.log_tail(), file=sys.stderr)

    def close(self) -> None:
        """Stop everything this workbench started; a note says how the last engine exited."""
        name = self._engine_spec.name if self._engine_spec is not None else ""
        exited = self.stop_engine()
        if exited:
            self.notes.append(
                f"teardown of {name}: after SIGTERM, "
                + ", ".join(
                    f"{role} exited in {seconds:.1f}s"
                    if seconds is not None
                    else f"{role} was SIGKILLed at 30s"
                    for role, seconds in exited.items()
                )
            )
        self._stack.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)
