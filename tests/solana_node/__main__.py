"""Run the test node in its own process (for a test whose engine runs elsewhere):

    python -m tests.solana_node --port 0 --fixtures /work/shared/fixtures/solana \
        --program LBUZKhRxPF3XUpBCjp4YzTKgLccjZhTSDM9YuVaPwxo=tests.solana_node.dlmm_program:PROGRAM

It prints one line `ready <url>` on stdout once it answers, then serves until killed.
A test drives it over HTTP: POST {"call": "advance", "args": [2]} to <url>/control (also
fail_next, behind, hold_landing, release_landing, fund_sol, mint_tokens_to, calls, ...).
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from pathlib import Path

from solders.pubkey import Pubkey

from tests.solana_node.fixtures import load_fixture_accounts
from tests.solana_node.node import TEST_GENESIS_HASH, SolanaNode
from tests.solana_node.programs import VenueProgram


def _program(spec: str) -> tuple[Pubkey, VenueProgram]:
    """PROGRAM_ID=module:attribute"""
    program_id, _, target = spec.partition("=")
    module_name, _, attribute = target.partition(":")
    program: VenueProgram = getattr(importlib.import_module(module_name), attribute)
    return Pubkey.from_string(program_id), program


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.solana_node")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fixtures", type=Path, action="append", default=[])
    parser.add_argument("--slot-ms", type=int, default=400)
    parser.add_argument("--genesis-hash", default=TEST_GENESIS_HASH)
    parser.add_argument("--program", action="append", default=[], help="PROGRAM_ID=module:attribute")
    arguments = parser.parse_args(argv)
    accounts = {}
    for directory in arguments.fixtures:
        accounts.update(load_fixture_accounts(directory))
    node = SolanaNode(
        accounts,
        slot_ms=arguments.slot_ms or None,
        genesis_hash=arguments.genesis_hash,
        host=arguments.host,
        port=arguments.port,
    )
    for spec in arguments.program:
        node.register_program(*_program(spec))
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with node:
        print(f"ready {node.url}", flush=True)
        try:
            stopped.wait()
        except KeyboardInterrupt:
            pass
    sys.exit(0)


if __name__ == "__main__":
    main()
