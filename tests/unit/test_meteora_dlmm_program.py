"""Optional tier: our swap2 / swap_exact_out2 instructions run by the real DLMM program
(solders' LiteSVM) over the mainnet fixture accounts, and what lands equals our quote to
the base unit. Skipped unless VENUE_PROGRAMS_DIR holds the program binary, as
`solana program dump LBUZKhRxPF3XUpBCjp4YzTKgLccjZhTSDM9YuVaPwxo <dir>/LBUZ….so` writes it
(never committed)."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from solders.account import Account
from solders.clock import Clock
from solders.compute_budget import set_compute_unit_limit
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from onchain.meteora_dlmm import (
    PROGRAM_ID,
    BinArray,
    bin_array_address,
    bin_arrays_for_swap,
    decode_bin_array,
    decode_lb_pair,
    dlmm_book,
    quote_exact_in,
    quote_exact_out,
    swap2_instruction,
    swap_exact_out2_instruction,
    transfer_fees,
)
from tests.solana_node.dlmm_program import DlmmProgram
from tests.solana_node.programs import ProgramFailure
from tests.unit.meteora_dlmm_fixtures import DlmmFixture, dlmm_fixtures, native_mint_data


def program_binary() -> Path | None:
    folder = os.environ.get("VENUE_PROGRAMS_DIR")
    if not folder:
        return None
    for name in (f"{PROGRAM_ID}.so", "lb_clmm.so", "meteora_dlmm.so"):
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


pytestmark = pytest.mark.skipif(program_binary() is None, reason="VENUE_PROGRAMS_DIR has no DLMM program")

AFTER_LAST_UPDATE = 45  # seconds past the pair's last update: inside its decay window
SLOT, EPOCH = 460_000_000, 900  # past 9t3E…'s activation slot and B5Ei…'s fee epoch
meteora_dlmm_program = DlmmProgram(epoch=EPOCH, slot=SLOT)


def _token_account(template: bytes, owner: Pubkey, amount: int) -> bytes:
    """A copy of a reserve (same mint, same Token-2022 extensions) owned by `owner`."""
    data = bytearray(template)
    data[32:64] = bytes(owner)
    struct.pack_into("<Q", data, 64, amount)
    return bytes(data)


def _node(
    pool: DlmmFixture, user: Keypair, seconds: int = AFTER_LAST_UPDATE
) -> tuple[LiteSVM, Pubkey, Pubkey]:
    svm = LiteSVM()
    binary = program_binary()
    assert binary is not None
    svm.add_program(PROGRAM_ID, binary.read_bytes())
    for account in pool.accounts.values():
        data = account.data if account.data is not None else native_mint_data()
        svm.set_account(account.address, Account(10**10, data, account.owner, False, 0))
    pair = pool.pair()
    svm.set_clock(Clock(SLOT, 0, EPOCH, EPOCH, pair.last_update_timestamp + seconds))
    svm.airdrop(user.pubkey(), 10**10)
    accounts = []
    for reserve in ("reserve_x", "reserve_y"):
        address = Keypair().pubkey()
        template = pool.accounts[reserve]
        data = _token_account(pool.data(reserve), user.pubkey(), 10**18)
        # Wrapped SOL moves lamports with the amount: hold them (the amount plus the rent).
        lamports = 10**18 + 2_039_280 if template.address != pool.accounts["reserve_x"].address else 10**10
        svm.set_account(address, Account(lamports, data, template.owner, False, 0))
        accounts.append(address)
    return svm, accounts[0], accounts[1]


def _amount(svm: LiteSVM, account: Pubkey) -> int:
    found = svm.get_account(account)
    assert found is not None
    return int(struct.unpack_from("<Q", bytes(found.data), 64)[0])


def _run(svm: LiteSVM, user: Keypair, instruction: Instruction) -> object:
    budget = set_compute_unit_limit(1_400_000)  # a swap across dozens of bins needs more than 200k
    message = MessageV0.try_compile(user.pubkey(), [budget, instruction], [], svm.latest_blockhash())
    return svm.send_transaction(VersionedTransaction(message, [user]))


@pytest.mark.parametrize("pool", dlmm_fixtures(), ids=lambda pool: pool.name[:6])
@pytest.mark.parametrize("swap_for_y", [True, False])
@pytest.mark.parametrize("fraction", [10**-6, 10**-3, 0.2, 0.9])
@pytest.mark.parametrize("seconds", [10, AFTER_LAST_UPDATE, 400, 5000])
def test_the_program_pays_what_we_quote(
    pool: DlmmFixture, swap_for_y: bool, fraction: float, seconds: int
) -> None:
    """From 10 s to 5000 s after the pair's last update: within the filter period (the
    volatility reference holds), within the decay window (it decays) and past it (reset),
    by each pool's own periods."""
    pair = pool.pair()
    user = Keypair()
    svm, user_x, user_y = _node(pool, user, seconds)
    book = dlmm_book(pair, pool.bin_arrays())
    fees = transfer_fees(pair, pool.mint("token_x_mint"), pool.mint("token_y_mint"), swap_for_y, EPOCH)
    now = pair.last_update_timestamp + seconds
    side = 1 if swap_for_y else 0  # what the pool pays out: Y when selling X
    liquidity = sum(amounts[side] for amounts in book.bins.values())
    wanted = max(1, int(liquidity * fraction))
    exact_out = quote_exact_out(book, wanted, swap_for_y, now, *fees)
    assert exact_out.complete
    amount_in = exact_out.amount_in
    quote = quote_exact_in(book, amount_in, swap_for_y, now, *fees)
    arrays = [bin_array_address(pair.address, i) for i in bin_arrays_for_swap(pair, None, swap_for_y)]
    arrays = [a for a in arrays if svm.get_account(a) is not None]
    user_in, user_out = (user_x, user_y) if swap_for_y else (user_y, user_x)
    before = _amount(svm, user_in), _amount(svm, user_out)
    instruction = swap2_instruction(
        pair, user.pubkey(), user_in, user_out, amount_in, quote.amount_out, arrays
    )
    emulated = meteora_dlmm_program(
        bytes(instruction.data), [m.pubkey for m in instruction.accounts], _reader(svm), now
    )
    unswapped = {address: _data(svm, address) for address in arrays}
    result = _run(svm, user, instruction)
    assert not hasattr(result, "err"), result
    paid, got = before[0] - _amount(svm, user_in), _amount(svm, user_out) - before[1]
    assert (paid, got) == (amount_in, quote.amount_out)
    assert got >= wanted
    # The test node's emulation leaves the pair and the bins as the program does.
    landed = decode_lb_pair(pair.address, _data(svm, pair.address))
    ours = decode_lb_pair(pair.address, emulated.writes[pair.address])
    assert (landed.active_id, landed.volatility) == (ours.active_id, ours.volatility)
    for address in arrays:
        expected = emulated.writes.get(address, unswapped[address])
        assert _bins(decode_bin_array(address, _data(svm, address))) == _bins(
            decode_bin_array(address, expected)
        )


def _data(svm: LiteSVM, address: Pubkey) -> bytes:
    found = svm.get_account(address)
    assert found is not None
    return bytes(found.data)


def _reader(svm: LiteSVM) -> Callable[[Pubkey], bytes | None]:
    def read(address: Pubkey) -> bytes | None:
        found = svm.get_account(address)
        return None if found is None else bytes(found.data)

    return read


def _bins(array: BinArray) -> list[tuple[int, int, int, int]]:
    return [
        (b.amount_x, b.amount_y, b.open_order_amount, b.processed_order_remaining_amount) for b in array.bins
    ]


@pytest.mark.parametrize("pool", dlmm_fixtures(), ids=lambda pool: pool.name[:6])
@pytest.mark.parametrize("swap_for_y", [True, False])
@pytest.mark.parametrize("fraction", [10**-6, 10**-3, 0.2, 0.9])
def test_the_program_takes_what_we_quote_for_an_exact_out(
    pool: DlmmFixture, swap_for_y: bool, fraction: float
) -> None:
    if pool.name.startswith("EtAd") and swap_for_y and fraction > 10**-6:
        # Found here: beyond the active bin's market liquidity (28 777 lamports) the program
        # fails with 6085 UndeterminedError (state/bin.rs:417) filling that bin's processed
        # orders (a version-1 bin array), whatever max_in_amount; exact in over the same
        # bins lands exactly our quote (the test above).
        pytest.xfail("the program refuses exact out into this bin's processed orders")
    pair = pool.pair()
    user = Keypair()
    svm, user_x, user_y = _node(pool, user)
    book = dlmm_book(pair, pool.bin_arrays())
    fees = transfer_fees(pair, pool.mint("token_x_mint"), pool.mint("token_y_mint"), swap_for_y, EPOCH)
    now = pair.last_update_timestamp + AFTER_LAST_UPDATE
    side = 1 if swap_for_y else 0
    wanted = max(1, int(sum(amounts[side] for amounts in book.bins.values()) * fraction))
    quote = quote_exact_out(book, wanted, swap_for_y, now, *fees)
    arrays = [bin_array_address(pair.address, i) for i in bin_arrays_for_swap(pair, None, swap_for_y)]
    arrays = [a for a in arrays if svm.get_account(a) is not None]
    user_in, user_out = (user_x, user_y) if swap_for_y else (user_y, user_x)
    before = _amount(svm, user_in), _amount(svm, user_out)
    instruction = swap_exact_out2_instruction(
        pair, user.pubkey(), user_in, user_out, quote.amount_in, wanted, arrays
    )
    result = _run(svm, user, instruction)
    assert not hasattr(result, "err"), result
    assert (before[0] - _amount(svm, user_in), _amount(svm, user_out) - before[1]) == (
        quote.amount_in,
        wanted,
    )


@pytest.mark.parametrize("pool", dlmm_fixtures(), ids=lambda pool: pool.name[:6])
def test_the_program_and_the_emulation_refuse_alike(pool: DlmmFixture) -> None:
    """One base unit past the quote: 6003 for swap2's min_amount_out, 6104 for
    swap_exact_out2's max_in_amount, from the program and from the emulation."""
    pair = pool.pair()
    book = dlmm_book(pair, pool.bin_arrays())
    fees = transfer_fees(pair, pool.mint("token_x_mint"), pool.mint("token_y_mint"), False, EPOCH)
    now = pair.last_update_timestamp + AFTER_LAST_UPDATE
    wanted = sum(x for x, _ in book.bins.values()) // 5
    quote = quote_exact_out(book, wanted, False, now, *fees)
    exact_in = quote_exact_in(book, quote.amount_in, False, now, *fees)
    arrays = [bin_array_address(pair.address, i) for i in bin_arrays_for_swap(pair, None, False)]
    for build, first, second, code in (
        (swap2_instruction, quote.amount_in, exact_in.amount_out + 1, 6003),
        (swap_exact_out2_instruction, quote.amount_in - 1, wanted, 6104),
    ):
        user = Keypair()
        svm, user_x, user_y = _node(pool, user)
        present = [a for a in arrays if svm.get_account(a) is not None]
        instruction = build(pair, user.pubkey(), user_y, user_x, first, second, present)
        with pytest.raises(ProgramFailure) as emulated:
            meteora_dlmm_program(
                bytes(instruction.data), [m.pubkey for m in instruction.accounts], _reader(svm), now
            )
        result = _run(svm, user, instruction)
        assert f"Custom({code})" in str(result) and emulated.value.code == code
