"""Each end-to-end module gets embedded servers of its own, so that its kills and
restarts touch nothing else. Persistent: Temporal keeps its state across a restart."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack import EmbeddedStack
from migrations import run_migrations
from tests.keys import install_test_keys


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    stack = EmbeddedStack(tmp_path_factory.mktemp("e2e-infra"), ui=False, persistent=True)
    try:
        database_url = stack.start().database_url
        run_migrations(database_url)
        install_test_keys(database_url)
        yield stack
    finally:
        stack.stop()
