"""What a client may ask of a strategy is one enum: each action has its route, and the
workflow update it is sent as is one the strategy workflow takes."""

from __future__ import annotations

from fastapi.routing import APIRoute
from temporalio import workflow

from api.strategies import router
from contracts.strategies import ACTION_UPDATES
from core.domain import StrategyAction
from workflows.strategy import StrategyWorkflow


def test_every_action_is_an_update_the_strategy_workflow_takes() -> None:
    definition = workflow._Definition.from_class(StrategyWorkflow)
    assert definition is not None
    updates = definition.updates
    assert set(ACTION_UPDATES) == set(StrategyAction)
    assert {ACTION_UPDATES[action] for action in StrategyAction} <= set(updates)


def test_every_action_has_its_route_and_the_paths_stay_as_clients_know_them() -> None:
    posted = {
        route.path
        for route in router.routes
        if isinstance(route, APIRoute) and "POST" in (route.methods or ())
    }
    assert {f"/strategies/{{strategy_id}}/{action}" for action in StrategyAction} <= posted
    assert [str(action) for action in StrategyAction] == ["pause", "resume", "cancel"]
