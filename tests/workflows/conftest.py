"""Each workflow test is one path of the state machine; recording names its history
after the test (see harness.RECORD_ENV)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.workflows.harness import RECORD_AS


@pytest.fixture(autouse=True)
def _record_as(request: pytest.FixtureRequest) -> Iterator[None]:
    token = RECORD_AS.set(request.node.name.removeprefix("test_"))
    yield
    RECORD_AS.reset(token)
