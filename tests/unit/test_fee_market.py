"""The fee market's arithmetic: what a landed transaction pays, what an attempt bids, how
likely it lands, how much compute it asks for, and who gets sandwiched."""

from __future__ import annotations

import random

import pytest

from contracts.landing import LandingRequest, PriorityFeeMode
from core.domain import FeeLevel
from market.compute import estimate_limit, units_consumed, wraps_of
from market.fees import FeeLevels, compute_unit_price, fee, fee_levels, landing_probability, median_fee
from market.searchers import bite, sandwich_odds
from orders.errors import InvalidOrder
from orders.landing import landing_request, request_of, request_view

LEVELS = FeeLevels(slot=1, congestion=0.5, low=1_000, medium=4_000, high=9_000, very_high=30_000)


def test_a_landed_transaction_pays_signature_limit_times_price_and_tip() -> None:
    paid = fee(compute_unit_limit=200_000, micro_lamports_per_cu=10_000, tip_lamports=25_000)
    assert (paid.network_lamports, paid.priority_lamports, paid.tip_lamports) == (5_000, 2_000, 25_000)
    assert paid.total_lamports == 32_000
    assert fee(3, 1, 0).priority_lamports == 1  # a fraction of a lamport is a lamport
    assert fee(200_000, 0, 0).total_lamports == 5_000


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (LandingRequest(), 4_000),  # auto: the medium level
        (LandingRequest(PriorityFeeMode.LEVEL, level=FeeLevel.HIGH), 9_000),
        (LandingRequest(PriorityFeeMode.EXACT, micro_lamports_per_cu=777), 777),
        (LandingRequest(PriorityFeeMode.NONE), 0),
    ],
)
def test_an_attempt_bids_what_the_order_asked(request_: LandingRequest, expected: int) -> None:
    assert compute_unit_price(request_, LEVELS, compute_unit_limit=100_000, escalation=0) == expected


def test_each_attempt_after_one_that_did_not_land_bids_half_as_much_again_up_to_the_cap() -> None:
    capped = LandingRequest(PriorityFeeMode.LEVEL, level=FeeLevel.VERY_HIGH, max_lamports=7_000)
    prices = [compute_unit_price(LandingRequest(), LEVELS, 100_000, n) for n in range(3)]
    assert prices == [4_000, 6_000, 9_000]
    # 100 000 CU at 30 000 µlamports is 3 000 lamports; 45 000 → 4 500; 67 500 → capped at 7 000.
    bids = [compute_unit_price(capped, LEVELS, 100_000, n) for n in range(4)]
    assert bids == [30_000, 45_000, 67_500, 70_000]
    assert all(fee(100_000, bid, 0).priority_lamports <= 7_000 for bid in bids)


def test_the_fee_budget_covers_three_attempts_at_their_cap() -> None:
    assert LandingRequest(
        PriorityFeeMode.LEVEL, max_lamports=20_000, tip_lamports=1_000
    ).fee_budget_lamports == (3 * (5_000 + 20_000 + 1_000))
    assert LandingRequest(PriorityFeeMode.NONE).fee_budget_lamports == 15_000


def test_fee_levels_are_ordered_and_rise_with_congestion() -> None:
    calm = fee_levels(7, 1_000, {s: 0.2 for s in range(980, 1_001)})
    busy = fee_levels(7, 1_000, {s: 0.9 for s in range(980, 1_001)})
    for levels in (calm, busy):
        assert levels.low <= levels.medium <= levels.high <= levels.very_high
    assert busy.medium > 5 * calm.medium
    assert calm.medium == pytest.approx(median_fee(0.2), rel=0.35)
    assert fee_levels(7, 1_000, {s: 0.2 for s in range(980, 1_001)}) == calm  # every process agrees


def test_paying_more_lands_more_often_and_congestion_the_other_way() -> None:
    """Landing frequency per slot over many slots, with fixed dice: monotone in the fee."""
    dice = random.Random(42)

    def landed(price: int, congestion: float) -> int:
        return sum(dice.random() < landing_probability(price, congestion, False, 0) for _ in range(4_000))

    by_price = [landed(price, 0.5) for price in (0, 2_000, 10_000, 50_000, 200_000, 1_000_000)]
    assert by_price == sorted(by_price) and len(set(by_price)) == len(by_price)
    by_congestion = [landed(50_000, c) for c in (0.1, 0.4, 0.7, 1.0)]
    assert by_congestion == sorted(by_congestion, reverse=True)
    # A tip lands it within the next slot or two, whatever the congestion.
    assert landing_probability(0, 1.0, True, 1) == 1.0 and landing_probability(0, 1.0, True, 0) >= 0.75


def test_searchers_go_for_size_and_slack() -> None:
    assert sandwich_odds(300, 500) > 0.5  # 300 SOL at 500 bps: more often than not
    assert sandwich_odds(1, 50) < 0.01  # 1 SOL at 50 bps: almost never
    assert sandwich_odds(30, 100) < sandwich_odds(300, 100) < sandwich_odds(300, 500)
    assert 0 < bite(1, 50) < bite(300, 500) < 1


def test_the_compute_limit_covers_the_route_with_a_bin_to_spare() -> None:
    legs = [("raydium", 0), ("meteora", 3)]
    limit = estimate_limit(legs, wraps_of("SOL", "USDC"))
    assert units_consumed(legs, 1) < units_consumed([("raydium", 0), ("meteora", 4)], 1) <= limit
    assert units_consumed([("meteora", 9)], 1) > units_consumed([("meteora", 1)], 1)  # bins cost
    assert limit % 1_000 == 0


@pytest.mark.parametrize(
    ("priority_fee", "tip", "code"),
    [
        ("fast", None, "invalid_priority_fee"),
        ({"level": "ludicrous"}, None, "invalid_priority_fee"),
        ({"level": "high", "max_lamports": 4_999}, None, "max_lamports_too_low"),
        ({"level": "high", "max_lamports": 10**12}, None, "invalid_priority_fee"),
        ({"micro_lamports_per_cu": -1}, None, "invalid_priority_fee"),
        ({"micro_lamports_per_cu": 10**12}, None, "invalid_priority_fee"),
        ({"micro_lamports_per_cu": 1.5}, None, "invalid_priority_fee"),
        ({"level": "high", "micro_lamports_per_cu": 5}, None, "invalid_priority_fee"),
        ("auto", 999, "invalid_tip"),
        ("auto", 10**9, "invalid_tip"),
    ],
)
def test_bad_landing_fields_are_refused_with_a_code(priority_fee: object, tip: int | None, code: str) -> None:
    with pytest.raises(InvalidOrder) as refused:
        landing_request(priority_fee, tip, True)
    assert refused.value.code == code


def test_the_stored_request_reads_back_as_asked() -> None:
    for asked in (
        "auto",
        "none",
        {"level": "very_high", "max_lamports": 50_000},
        {"micro_lamports_per_cu": 0},
    ):
        request = landing_request(asked, 1_000, False)
        assert request_view(request)["priority_fee"] == asked
        assert request_of(request_view(request)) == request
