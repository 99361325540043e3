"""schemathesis against the OpenAPI schema of a real API process: generated requests,
valid and invalid, one at a time and as linked sequences (place an order, then read,
list the events of and cancel it). The server never answers >= 500, and every error is
problem+json."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from schemathesis import Case, GenerationMode
from schemathesis.core.transport import Response

from devstack import EmbeddedStack
from devstack.engine import QUIET_MARKET, EngineProcesses
from tests.keys import KEY_SECRET_ENV, OPERATOR, auth

# Bounded, so that `make test` stays fast; the examples differ from run to run.
EXAMPLES = 150
SETTINGS = hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    stateful_step_count=6,
)


@pytest.fixture(scope="module")
def api_url(stack: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    engine = EngineProcesses(
        stack.urls,
        Path(tmp_path_factory.mktemp("fuzz")),
        {
            **QUIET_MARKET,
            **KEY_SECRET_ENV,
            "ORDER_ENGINE_SIM_QUOTE_LATENCY_MS": "0",
            "ORDER_ENGINE_SIM_EXECUTION_LATENCY_MS": "0",
        },
    )
    try:
        engine.start("worker")
        yield str(engine.start("api").url)
    finally:
        engine.stop()


def check(response: Response, case: Case[Any]) -> None:
    where = f"{case.method} {case.formatted_path} {case.query} {case.body!r}"
    # Printed as well as asserted: against a live server, Hypothesis's replay of a failure
    # can end in a "flaky strategy" error that hides the first failing response.
    if response.status_code >= 500 or (
        response.status_code >= 400 and "problem" not in str(response.headers)
    ):
        print("FAILURE", where, response.status_code, response.text[:300])
    assert response.status_code < 500, f"{where} -> {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        assert response.headers["content-type"][0].startswith("application/problem+json"), where
        problem: dict[str, Any] = response.json()
        assert problem["status"] == response.status_code and problem["code"] and problem["title"], where


# An operator key reaches every endpoint (an ordinary one would stop at 403 on /sim/*).
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_generated_requests_never_break_the_server(api_url: str, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json")
    answers: Counter[tuple[str, int]] = Counter()

    @SETTINGS
    @given(case=schema.as_strategy(generation_mode=mode))
    def one_request(case: Case[Any]) -> None:
        response = case.call(base_url=api_url, headers=auth(OPERATOR))
        answers[(f"{case.method} {case.path}", response.status_code)] += 1
        check(response, case)

    one_request()
    assert sum(answers.values()) >= EXAMPLES // 2
    if mode == GenerationMode.POSITIVE:  # (negative mode also garbles the Authorization header)
        # The key was accepted and the requests reached the routes: no wall of 401s.
        assert not [answer for answer in answers if answer[1] == 401]
        assert len({path for (path, status) in answers if status < 300}) >= 5


def test_linked_sequences_never_break_the_server(api_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json")
    links = schema["/orders"]["POST"].definition.raw["responses"]["202"]["links"]
    assert set(links) == {"GetOrder", "GetOrderEvents", "CancelOrder"}

    placed: Counter[int] = Counter()

    # The orders' links only: other operations (strategies, say) would take the turns.
    orders_only = schema.include(path_regex="^/orders")

    class OrderSequences(orders_only.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Case[Any]) -> None:
            # Random bodies are almost never a valid order: keep the generated type and
            # make the rest valid, so that orders get placed and their links followed.
            if case.method == "POST" and case.path == "/orders" and isinstance(case.body, dict):
                # A generated Idempotency-Key repeats across runs and would answer 200
                # where the first run saw 202: Hypothesis needs runs to replay alike.
                case.headers = {**dict(case.headers or {}), "Idempotency-Key": uuid.uuid4().hex}  # type: ignore[assignment]
                kind = case.body.get("type", "market")
                case.body = {"type": kind, "token_in": "SOL", "token_out": "USDC", "amount": "0.1"}
                if kind != "market":
                    case.body["expires_in_s"] = 30
                # Conditions that hold nowhere near the price: they wait, then expire.
                if kind in ("limit", "take_profit"):
                    case.body["limit_price" if kind == "limit" else "trigger_price"] = "100000"
                if kind == "stop_loss":
                    case.body["trigger_price"] = "0.01"
                if kind == "trailing_stop":
                    case.body["trailing_bps"] = 5000

        def after_call(self, response: Response, case: Case[Any]) -> None:
            if case.method == "POST" and case.path == "/orders":
                placed[response.status_code] += 1

        def get_call_kwargs(self, case: Case[Any]) -> dict[str, Any]:
            return {"base_url": api_url, "headers": auth(OPERATOR)}

        def validate_response(self, response: Response, case: Case[Any], **kwargs: Any) -> None:
            check(response, case)

    OrderSequences.run(settings=hypothesis.settings(SETTINGS, max_examples=EXAMPLES // 3))
    assert placed[202] >= 1, placed
