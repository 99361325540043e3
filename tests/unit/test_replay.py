"""Determinism guard: today's workflow code must replay every saved history.

A change that would break workflows already running (a step added, removed or moved)
fails here; intended changes go behind `workflow.patched()` and get new recordings
(`python -m tests.histories.record`) beside the old ones.

The Replayer runs the workflows in Temporal's default sandbox, which re-imports their
modules with clocks, randomness and I/O refused. Workers pass modules through (see
worker.WORKFLOW_RUNNER), so this is where such a call in workflow code fails the build.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.market import BackgroundTradingWorkflow, MarketWatchWorkflow
from workflows.order import OrderWorkflow

HISTORIES = sorted((Path(__file__).parents[1] / "histories").glob("*.json"))


def test_there_are_histories_for_every_path() -> None:
    names = {path.stem for path in HISTORIES}
    assert {
        "market_confirmed_single_venue",
        "market_confirmed_split",
        "market_failed_retries_exhausted",
    } <= names


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_saved_history_replays(path: Path) -> None:
    workflow_id = json.loads(path.read_text())["events"][0]["workflowExecutionStartedEventAttributes"].get(
        "workflowId", path.stem
    )
    history = WorkflowHistory.from_json(workflow_id, path.read_text())
    replayer = Replayer(workflows=[OrderWorkflow, BackgroundTradingWorkflow, MarketWatchWorkflow])
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
