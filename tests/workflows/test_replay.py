"""Determinism guard: today's workflow code must replay every saved history.

A change that would break workflows already running (a step added, removed or moved)
fails here; intended changes go behind `workflow.patched()` and get new recordings
beside the old ones, which stay. Two kinds of recordings:

- tests/histories/*.json: real runs against the real engine (`python -m
  tests.histories.record`); `v1_`/`v2_` are the shapes of earlier versions.
- tests/histories/paths/*.json: one per path of the state machine, from the workflow
  tests (`ORDER_ENGINE_RECORD_HISTORIES=1 pytest tests/workflows`).

The Replayer runs the workflows in Temporal's default sandbox, which re-imports their
modules with clocks, randomness and I/O refused. Workers pass modules through (see
processes/worker.py), so this is where such a call in workflow code fails the build.
"""

from __future__ import annotations

import ast
import base64
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.market import BackgroundTradingWorkflow, MarketWatchWorkflow
from workflows.order import OrderWorkflow
from workflows.strategy import DcaRoundWorkflow, StrategyWorkflow

HISTORIES = Path(__file__).parents[1] / "histories"
RECORDED = sorted(HISTORIES.glob("**/*.json"))
PATH_TESTS = [
    Path(__file__).with_name("test_order_paths.py"),
    Path(__file__).with_name("test_strategy_paths.py"),
]


def test_every_path_of_the_state_machine_has_a_recorded_history() -> None:
    tests = {
        node.name.removeprefix("test_")
        for module in PATH_TESTS
        for node in ast.parse(module.read_text()).body
        if isinstance(node, ast.AsyncFunctionDef) and node.name.startswith("test_")
    }
    recorded = {path.stem for path in (HISTORIES / "paths").glob("*.json")}
    assert tests - recorded == set(), "record them: ORDER_ENGINE_RECORD_HISTORIES=1 pytest tests/workflows"
    real_runs = {path.stem for path in HISTORIES.glob("*.json")}
    assert {
        "market_confirmed_single_venue",
        "market_confirmed_split",
        "limit_filled_after_price_move",
    } <= real_runs


@pytest.mark.parametrize("path", RECORDED, ids=[str(p.relative_to(HISTORIES)) for p in RECORDED])
async def test_saved_history_replays(path: Path) -> None:
    text = path.read_text()
    started = json.loads(text)["events"][0]["workflowExecutionStartedEventAttributes"]
    history = WorkflowHistory.from_json(started.get("workflowId", path.stem), text)
    replayer = Replayer(
        workflows=[
            OrderWorkflow,
            StrategyWorkflow,
            DcaRoundWorkflow,
            BackgroundTradingWorkflow,
            MarketWatchWorkflow,
        ]
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


def _patch_ids() -> dict[str, str]:
    """Every id passed to `workflow.patched()` in workflows/, with its workflow module."""
    ids: dict[str, str] = {}
    for module in (Path(__file__).parents[2] / "workflows").glob("*.py"):
        tree = ast.parse(module.read_text())
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for target in node.targets
            if isinstance(target, ast.Name) and isinstance(node.value.value, str)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "patched"
                and node.args
            ):
                arg = node.args[0]
                patch_id = arg.value if isinstance(arg, ast.Constant) else constants[ast.unparse(arg)]
                ids[str(patch_id)] = module.stem
    return ids


def _markers(path: Path) -> tuple[str, set[str]]:
    """A recording's workflow type and the patch ids its markers carry."""
    events = json.loads(path.read_text())["events"]
    workflow_type = events[0]["workflowExecutionStartedEventAttributes"]["workflowType"]["name"]
    ids: set[str] = set()
    for event in events:
        marker = event.get("markerRecordedEventAttributes")
        if marker and marker.get("markerName") == "core_patch":
            for payloads in marker["details"].values():
                for payload in payloads["payloads"]:
                    ids.add(json.loads(base64.b64decode(payload["data"]))["id"])
    return workflow_type, ids


WORKFLOW_TYPES = {"order": "OrderWorkflow", "strategy": "StrategyWorkflow", "market": "MarketWatchWorkflow"}


@pytest.mark.parametrize("patch_id", sorted(_patch_ids()))
def test_both_sides_of_every_patch_are_recorded(patch_id: str) -> None:
    """docs/decisions/0010: a patch lands with recordings of its old and its new path."""
    workflow_type = WORKFLOW_TYPES[_patch_ids()[patch_id]]
    markers = [ids for kind, ids in map(_markers, RECORDED) if kind == workflow_type]
    assert any(patch_id in ids for ids in markers), f"no recording takes the new path of {patch_id!r}"
    assert any(patch_id not in ids for ids in markers), f"no recording takes the old path of {patch_id!r}"
