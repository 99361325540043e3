"""Pool math and routing, without any server."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from market.pools import Pool, genesis_pools
from market.router import best_route, split_amounts

RAYDIUM = Pool("raydium", "SOL", "USDC", 50_000 * 10**9, 7_500_000 * 10**6, 25)
METEORA = Pool("meteora", "SOL", "USDC", 20_000 * 10**9, 3_001_000 * 10**6, 10)
amounts = st.integers(min_value=1, max_value=5_000 * 10**9)


@given(amounts, amounts)
def test_output_grows_with_input_and_never_exceeds_reserves(a: int, b: int) -> None:
    small, large = sorted((a, b))
    out_small = RAYDIUM.swap_exact_in("SOL", small).amount_out
    out_large = RAYDIUM.swap_exact_in("SOL", large).amount_out
    assert 0 <= out_small <= out_large < RAYDIUM.reserve_quote


@given(amounts)
def test_fee_is_taken_and_constant_product_never_decreases(amount: int) -> None:
    result = METEORA.swap_exact_in("SOL", amount)
    assert result.fee >= amount * METEORA.fee_bps // 10_000
    after = METEORA.after_swap("SOL", result)
    assert after.reserve_base * after.reserve_quote >= METEORA.reserve_base * METEORA.reserve_quote


def test_swap_in_the_other_direction_uses_the_other_reserve() -> None:
    usdc_in = 150 * 10**6
    sol_out = RAYDIUM.swap_exact_in("USDC", usdc_in).amount_out
    assert 0.99 * 10**9 < sol_out < 10**9  # about one SOL, less fee and impact


def test_small_orders_go_to_the_cheaper_venue_and_large_ones_split() -> None:
    assert best_route([RAYDIUM, METEORA], "SOL", 10**9).selected_dex == "meteora"
    large = best_route([RAYDIUM, METEORA], "SOL", 1_000 * 10**9)
    assert large.selected_dex == "split"
    assert sum(leg.amount_in for leg in large.legs) == 1_000 * 10**9


@given(st.integers(min_value=20, max_value=10_000 * 10**9))
def test_router_matches_brute_force_over_chunked_splits(amount: int) -> None:
    route = best_route([RAYDIUM, METEORA], "SOL", amount)
    chunks = split_amounts(amount)
    best = 0
    for k in range(len(chunks) + 1):  # k chunks to one venue, the rest to the other
        for first, second in ((RAYDIUM, METEORA), (METEORA, RAYDIUM)):
            to_first = sum(chunks[:k])
            out = (
                first.swap_exact_in("SOL", to_first).amount_out
                + second.swap_exact_in("SOL", amount - to_first).amount_out
            )
            best = max(best, out)
    assert route.amount_out >= best
    assert sum(leg.amount_in for leg in route.legs) == amount


def test_genesis_prices_are_near_their_targets() -> None:
    sol_usdc = {p.dex: p for p in genesis_pools() if p.pair == "SOL/USDC"}
    assert 149 < sol_usdc["raydium"].mid_price() < 151
    assert 149 < sol_usdc["meteora"].mid_price() < 151
