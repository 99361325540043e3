"""Exact-out swaps: Raydium's swap-base-output and the DLMM exact-out bin walk. They give
exactly what was asked, round in the pool's favour, and never need more input than an
exact-in swap that paid out as much."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from market.dlmm import FEE_PRECISION, DlmmBook, _ceil_div
from market.pools import ConstantProductPool, DlmmPool, meteora_sol_usdc, raydium_pool
from tests.unit.test_dlmm import reference_book

RAYDIUM = raydium_pool("SOL", "USDC", "50000", "150")
METEORA = meteora_sol_usdc()
amounts = st.integers(min_value=1, max_value=3_000 * 10**9)


@given(amounts, st.booleans())
def test_raydium_exact_out_of_an_exact_in_output_needs_no_more_input(amount: int, sell_sol: bool) -> None:
    token_in = "SOL" if sell_sol else "USDC"
    amount = amount if sell_sol else amount // 1000
    given_out = RAYDIUM.swap(token_in, amount)[0].amount_out
    if given_out == 0:
        return
    result, after = RAYDIUM.swap_exact_out(token_in, given_out)
    assert result.complete and result.amount_out == given_out  # exactly what was asked
    assert result.amount_in <= amount
    # In the pool's favour: k never decreases, and one base unit less would not have done.
    assert after.reserve_base * after.reserve_quote >= RAYDIUM.reserve_base * RAYDIUM.reserve_quote
    assert RAYDIUM.swap(token_in, result.amount_in - 1)[0].amount_out <= given_out


def test_raydium_exact_out_is_the_programs_rounding() -> None:
    x, y, out = RAYDIUM.reserve_base, RAYDIUM.reserve_quote, 150_000_000  # 150 USDC for SOL
    swapped = -(-x * out // (y - out))
    assert RAYDIUM.swap_exact_out("SOL", out)[0].amount_in == -(
        -swapped * 10_000 // (10_000 - RAYDIUM.fee_bps)
    )
    assert not RAYDIUM.swap_exact_out("SOL", y)[0].complete  # never the whole reserve


@settings(max_examples=60)
@given(amounts, st.booleans())
def test_dlmm_exact_out_of_an_exact_in_output_needs_no_more_input(amount: int, sell_sol: bool) -> None:
    token_in = "SOL" if sell_sol else "USDC"
    amount = amount if sell_sol else amount // 1000
    swap = METEORA.swap(token_in, amount, now=0)[0]
    if not swap.complete or swap.amount_out == 0:
        return
    result, after = METEORA.swap_exact_out(token_in, swap.amount_out, now=0)
    assert result.complete and result.amount_out == swap.amount_out
    assert result.amount_in <= amount
    assert _value_kept(METEORA, after)


@settings(max_examples=30)
@given(st.integers(min_value=10**6, max_value=10**12), st.booleans())
def test_dlmm_exact_out_on_the_real_pool_needs_no_more_than_exact_in(amount: int, swap_for_y: bool) -> None:
    book, data = reference_book()
    now = float(data["clockTs"])
    book = DlmmBook(book.bin_step, book.active_id, book.bins, book.fees, book.volatility, book.prices)
    swap = book.swap(amount, swap_for_y, now)
    if not swap.complete or swap.amount_out == 0:
        return
    exact = book.swap_exact_out(swap.amount_out, swap_for_y, now)
    assert exact.complete and exact.amount_out == swap.amount_out and exact.amount_in <= amount


def test_dlmm_exact_out_within_a_bin_is_the_programs_fee_on_the_input() -> None:
    """One bin, by hand: the input at the bin's price rounded up, grossed up by the fee
    as the oracle library's `included_in` does."""
    from meteora_dlmm.fees import included_in  # the oracle library's fee, grossed up

    book = METEORA.book
    out = 10_000_000  # 10 USDC: well within the active bin
    walk = book.swap_exact_out(out, True, now=0)
    fee_rate = book.fee_rate(book._accumulated(book._reference_updated(0), book.active_id))
    needed = _ceil_div(out * 2**64, book.price_x64(book.active_id))
    assert walk.bins_crossed == 1
    grossed_up: int = included_in(needed, fee_rate)  # type: ignore[no-untyped-call]
    assert walk.amount_in == grossed_up == needed + _ceil_div(needed * fee_rate, FEE_PRECISION - fee_rate)


def test_exact_out_beyond_what_the_pool_holds_is_incomplete() -> None:
    assert not METEORA.swap_exact_out("SOL", 10**15, now=0)[0].complete
    assert isinstance(RAYDIUM, ConstantProductPool) and isinstance(METEORA, DlmmPool)


def _value_kept(before: DlmmPool, after: DlmmPool) -> bool:
    """Every touched bin is worth at least as much at its own price as before."""
    book = before.book
    for bin_id, (x, y) in after.book.bins.items():
        old_x, old_y = book.bins.get(bin_id, (0, 0))
        price = book.price_x64(bin_id)
        if x * price + y * 2**64 < old_x * price + old_y * 2**64:
            return False
    return True
