"""Pool math, routing and the market's calibration, without any server."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from core.domain import Dex
from market.dlmm import Volatility
from market.pools import ConstantProductPool, genesis_pools, meteora_sol_usdc, raydium_pool
from market.router import best_route, pool_outputs, split_amounts

RAYDIUM = raydium_pool("SOL", "USDC", "50000", "150")
METEORA = meteora_sol_usdc()
SOL = 10**9
amounts = st.integers(min_value=1, max_value=5_000 * SOL)


@given(amounts, amounts)
def test_constant_product_output_grows_with_input_and_never_exceeds_reserves(a: int, b: int) -> None:
    small, large = sorted((a, b))
    out_small = RAYDIUM.quote_swap("SOL", small).amount_out
    out_large = RAYDIUM.quote_swap("SOL", large).amount_out
    assert 0 <= out_small <= out_large < RAYDIUM.reserve_quote


@given(amounts)
def test_fee_is_taken_from_the_input_and_k_never_decreases(amount: int) -> None:
    result, after = RAYDIUM.swap("SOL", amount)
    assert result.fee == -(-amount * 25 // 10_000)  # rounded up, as on chain
    assert isinstance(after, ConstantProductPool)
    assert after.reserve_base * after.reserve_quote >= RAYDIUM.reserve_base * RAYDIUM.reserve_quote


def test_raydium_integer_math_matches_the_program() -> None:
    # AMM v4 / CPMM: fee = ceil(in × 25 / 10⁴); out = floor(R_out × net / (R_in + net)).
    pool = ConstantProductPool(Dex.RAYDIUM, "SOL", "USDC", 1_000_003, 2_000_011, 25)
    result = pool.quote_swap("SOL", 10_001)
    assert result.fee == 26
    assert result.amount_out == 2_000_011 * 9_975 // (1_000_003 + 9_975)


def test_swap_in_the_other_direction() -> None:
    sol_out = RAYDIUM.quote_swap("USDC", 150 * 10**6).amount_out
    assert 0.99 * SOL < sol_out < SOL  # about one SOL, less fee and impact


def route(amount: int, meteora=METEORA):  # type: ignore[no-untyped-def]
    return best_route(pool_outputs([RAYDIUM, meteora], "SOL"), amount)


def test_calibration_one_sol_goes_to_meteora() -> None:
    assert route(1 * SOL).selected_dex == "meteora"


def test_calibration_a_thousand_sol_splits_with_30_to_40_percent_on_raydium() -> None:
    chosen = route(1_000 * SOL)
    assert chosen.selected_dex == "split"
    share = sum(leg.amount_in for leg in chosen.legs if leg.dex == "raydium") / (1_000 * SOL)
    assert 0.30 <= share <= 0.40, share


def test_calibration_ten_sol_go_to_raydium_when_meteora_is_volatile() -> None:
    assert route(10 * SOL).selected_dex == "meteora"
    volatile = replace(
        METEORA, book=replace(METEORA.book, volatility=Volatility(accumulator=300_000, reference=300_000))
    )
    assert volatile.fee_bps > 25
    assert route(10 * SOL, volatile).selected_dex == "raydium"


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=20, max_value=3_000 * SOL))
def test_router_matches_brute_force_over_every_5_percent_split(amount: int) -> None:
    chosen = route(amount)
    chunks = split_amounts(amount)
    best = 0
    for k in range(len(chunks) + 1):  # k chunks to one venue, the rest to the other
        for first, second in ((RAYDIUM, METEORA), (METEORA, RAYDIUM)):
            to_first = sum(chunks[:k])
            out = (
                first.quote_swap("SOL", to_first).amount_out
                + second.quote_swap("SOL", amount - to_first).amount_out
            )
            best = max(best, out)
    assert chosen.amount_out == best
    assert sum(leg.amount_in for leg in chosen.legs) == amount


def test_genesis_prices_are_near_their_targets() -> None:
    sol_usdc = {p.dex: p for p in genesis_pools() if p.pair == "SOL/USDC"}
    assert 149.5 < sol_usdc[Dex.RAYDIUM].mid_price() < 150.5
    assert 149.5 < sol_usdc[Dex.METEORA].mid_price() < 150.5
