"""The repository's copy of the mainnet fixtures is the project's shared one, byte for
byte (where the shared one is beside this checkout)."""

from __future__ import annotations

import pytest

from tests.solana_node.fixtures import fixtures_directory, shared_fixtures_directory


def test_the_fixture_copy_equals_the_shared_fixtures() -> None:
    shared = shared_fixtures_directory()
    if shared is None:
        pytest.skip("no ../shared/fixtures/solana beside this checkout")
    ours = fixtures_directory()
    names = sorted(p.relative_to(shared) for p in shared.rglob("*") if p.is_file())
    assert names == sorted(
        p.relative_to(ours) for p in ours.rglob("*") if p.is_file() and p.name != "README.md"
    )
    for name in names:
        assert (ours / name).read_bytes() == (shared / name).read_bytes(), name
