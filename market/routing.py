"""Route planning across pools: direct or through intermediate tokens (up to 3 hops),
split across venues at each hop, exact-in or exact-out.

Exact-in: the plan that pays the most `token_out` for `amount`. Exact-out: the plan that
needs the least `token_in` to pay exactly `amount`. Each candidate path (a simple path of
at most `max_hops` pairs in the token graph of open pools) is first priced with the best
single venue per hop; the best few are priced again with every 5 % split between the two
best venues of each hop (market/router.py), and the best of those wins. A longer path
wins only when it is strictly better, so a direct route is never passed over for an
equal one. The cost stays bounded: a handful of paths, a few dozen swaps per hop.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial

from core.domain import SwapMode
from market.pools import Pool, SwapResult
from market.router import Output, best_route, split_amounts

BPS = 10_000
REFINED_PATHS = 3  # paths priced again with splits
# Exact-out splits: steps of a ternary search between the 5 % grid's neighbours. Each
# narrows the range by a third; 12 leave ~1 % of a 5 % step, where the cost is flat.
REFINE_STEPS = 12


class NoRoute(Exception):
    """Nothing connects the pair within the hops allowed, or the pools cannot fill it."""

    def __init__(self, message: str, liquidity: bool = False, not_open: bool = False) -> None:
        super().__init__(message)
        self.liquidity = liquidity  # the pair is connected, but too thin for the amount
        self.not_open = not_open  # it will be connected, once a pool opens


@dataclass(frozen=True)
class PlannedLeg:
    hop: int
    dex: str
    pool: str
    token_in: str
    token_out: str
    amount_in: int
    amount_out: int
    fee_amount: int  # of token_in
    share_bps: int  # of the hop's input (exact-in) or output (exact-out)
    bins_crossed: int = 0  # DLMM: what its compute units grow with


@dataclass(frozen=True)
class RoutePlan:
    mode: SwapMode
    legs: tuple[PlannedLeg, ...]
    amount_in: int
    amount_out: int
    price_impact_bps: int

    @property
    def hops(self) -> int:
        return max(leg.hop for leg in self.legs) + 1

    @property
    def selected_dex(self) -> str:
        dexes = {leg.dex for leg in self.legs}
        return dexes.pop() if len(dexes) == 1 else "split"

    @property
    def path(self) -> list[str]:
        tokens = [self.legs[0].token_in]
        for hop in range(self.hops):
            tokens.append(next(leg.token_out for leg in self.legs if leg.hop == hop))
        return tokens


def plan_route(
    pools: Iterable[Pool],
    token_in: str,
    token_out: str,
    amount: int,
    *,
    mode: SwapMode = SwapMode.EXACT_IN,
    max_hops: int = 3,
    dexes: Sequence[str] | None = None,
    now: float = 0,
) -> RoutePlan:
    """The best plan; NoRoute when none can fill it."""
    by_pair: dict[frozenset[str], list[Pool]] = {}
    later: dict[frozenset[str], list[Pool]] = {}  # pools that have not opened yet
    for pool in pools:
        if dexes is not None and pool.dex not in dexes:
            continue
        (by_pair if pool.opens_at <= now else later).setdefault(
            frozenset((pool.base, pool.quote)), []
        ).append(pool)
    paths = _paths(by_pair, token_in, token_out, max_hops)
    if not paths:
        everything = {pair: by_pair.get(pair, []) + later.get(pair, []) for pair in {*by_pair, *later}}
        if _paths(everything, token_in, token_out, max_hops):
            opens = min(pool.opens_at for pools_ in later.values() for pool in pools_)
            raise NoRoute(
                f"the route from {token_in} to {token_out} needs a pool that opens in {opens - now:.0f} s",
                not_open=True,
            )
        raise NoRoute(f"no route from {token_in} to {token_out} within {max_hops} hop(s)")
    price = _exact_in if mode is SwapMode.EXACT_IN else _exact_out
    quick = []
    for path in paths:
        plan = price(path, by_pair, amount, now, split=False)
        if plan is not None:
            quick.append(plan)
    if not quick:
        raise NoRoute(
            f"the pools cannot fill {amount} base units from {token_in} to {token_out}", liquidity=True
        )
    quick.sort(key=_rank(mode))
    best = quick[0]
    for candidate in quick[:REFINED_PATHS]:
        refined = price(candidate.path, by_pair, amount, now, split=True) or candidate
        if _rank(mode)(refined) < _rank(mode)(best):
            best = refined
    return best


def _rank(mode: SwapMode) -> Callable[[RoutePlan], tuple[int, int]]:
    """Better first: more out (exact-in) or less in (exact-out), then fewer hops."""
    if mode is SwapMode.EXACT_IN:
        return lambda plan: (-plan.amount_out, plan.hops)
    return lambda plan: (plan.amount_in, plan.hops)


def _paths(by_pair: dict[frozenset[str], list[Pool]], start: str, end: str, max_hops: int) -> list[list[str]]:
    neighbours: dict[str, set[str]] = {}
    for pair in by_pair:
        a, b = tuple(pair)
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    found: list[list[str]] = []

    def walk(path: list[str]) -> None:
        if path[-1] == end:
            found.append(path)
            return
        if len(path) > max_hops:
            return
        for token in sorted(neighbours.get(path[-1], ())):
            if token not in path:
                walk([*path, token])

    if start != end:
        walk([start])
    return found


def _exact_in(
    path: list[str], by_pair: dict[frozenset[str], list[Pool]], amount: int, now: float, split: bool
) -> RoutePlan | None:
    legs: list[PlannedLeg] = []
    current, ideal = amount, 1.0
    for hop, (token_in, token_out) in enumerate(itertools.pairwise(path)):
        if current <= 0:  # dust: nothing left to carry on (the order fails, nothing to receive)
            return RoutePlan(SwapMode.EXACT_IN, _fix_shares(legs), amount, 0, BPS) if legs else None
        pools = {str(pool.dex): pool for pool in by_pair[frozenset((token_in, token_out))]}
        results: dict[tuple[str, int], SwapResult] = {}

        def output(
            dex: str,
            amount_in: int,
            token_in: str = token_in,
            pools: dict[str, Pool] = pools,
            results: dict[tuple[str, int], SwapResult] = results,
        ) -> int:
            result = results.get((dex, amount_in))
            if result is None:
                result = results[(dex, amount_in)] = pools[dex].quote_swap(token_in, amount_in, now)
            return result.amount_out if result.complete else 0

        outputs: dict[str, Output] = {dex: partial(output, dex) for dex in pools}
        if split or not any(output(dex, current) for dex in pools):  # too much for any one venue
            route = best_route(outputs, current)
            allocation = [(leg.dex, leg.amount_in) for leg in route.legs]
        else:
            allocation = [(max(pools, key=lambda dex: output(dex, current)), current)]
        hop_out = 0
        for dex, amount_in in allocation:
            result = pools[dex].quote_swap(token_in, amount_in, now)
            if not result.complete:
                return None  # (dust that pays nothing is a plan too: the order says so)
            legs.append(
                PlannedLeg(
                    hop,
                    dex,
                    pools[dex].pool_id,
                    token_in,
                    token_out,
                    amount_in,
                    result.amount_out,
                    result.fee,
                    amount_in * BPS // current,
                    result.bins_crossed,
                )
            )
            hop_out += result.amount_out
            ideal *= 1 - result.price_impact_bps / BPS * amount_in / current
        current = hop_out
    return RoutePlan(SwapMode.EXACT_IN, _fix_shares(legs), amount, current, _impact(ideal))


def _exact_out(
    path: list[str], by_pair: dict[frozenset[str], list[Pool]], amount: int, now: float, split: bool
) -> RoutePlan | None:
    """Backwards from the last hop: each hop must pay out exactly what the next needs."""
    legs: list[PlannedLeg] = []
    wanted, ideal = amount, 1.0
    for hop in reversed(range(len(path) - 1)):
        token_in, token_out = path[hop], path[hop + 1]
        pools = {str(pool.dex): pool for pool in by_pair[frozenset((token_in, token_out))]}
        # Too much for any one venue: the quick pricing splits too.
        allocation = _split_exact_out(pools, token_in, wanted, now, split) or _split_exact_out(
            pools, token_in, wanted, now, True
        )
        if allocation is None:
            return None
        needed = 0
        for dex, amount_out, result in allocation:
            legs.append(
                PlannedLeg(
                    hop,
                    dex,
                    pools[dex].pool_id,
                    token_in,
                    token_out,
                    result.amount_in,
                    amount_out,
                    result.fee,
                    amount_out * BPS // wanted,
                    result.bins_crossed,
                )
            )
            needed += result.amount_in
            ideal *= 1 - result.price_impact_bps / BPS * amount_out / wanted
        wanted = needed
    legs.sort(key=lambda leg: leg.hop)
    return RoutePlan(SwapMode.EXACT_OUT, _fix_shares(legs), wanted, amount, _impact(ideal))


def _split_exact_out(
    pools: dict[str, Pool], token_in: str, wanted: int, now: float, split: bool
) -> list[tuple[str, int, SwapResult]] | None:
    """The cheapest way to pay out `wanted`: one venue, or (with `split`) every 5 % split
    of the output between the two cheapest."""
    singles = []
    for dex, pool in pools.items():
        result = pool.swap_exact_out(token_in, wanted, now)[0]
        if result.complete:
            singles.append((result.amount_in, dex, result))
    if not singles:
        best: list[tuple[str, int, SwapResult]] | None = None
        cost = None
    else:
        singles.sort(key=lambda s: s[0])
        cost, dex, result = singles[0]
        best = [(dex, wanted, result)]
    if split and len(pools) > 1:
        ranked = [dex for _, dex, _ in singles] or list(pools)
        ranked += [dex for dex in pools if dex not in ranked]
        a, b = ranked[0], ranked[1]

        def priced(to_a: int) -> tuple[int, list[tuple[str, int, SwapResult]]] | None:
            one = pools[a].swap_exact_out(token_in, to_a, now)[0]
            two = pools[b].swap_exact_out(token_in, wanted - to_a, now)[0]
            if not (one.complete and two.complete):
                return None
            return one.amount_in + two.amount_in, [(a, to_a, one), (b, wanted - to_a, two)]

        prefix, chunks, best_prefix = 0, split_amounts(wanted), None
        for chunk in chunks[:-1]:
            prefix += chunk
            found = priced(prefix)
            if found is not None and (cost is None or found[0] < cost):
                (cost, best), best_prefix = found, prefix
        if best_prefix is not None:
            # The cost is convex in the split: narrow it down between the grid neighbours.
            low, high = max(best_prefix - chunks[0], 1), min(best_prefix + chunks[0], wanted - 1)
            for _ in range(REFINE_STEPS):
                if high - low <= 2:
                    break
                left, right = low + (high - low) // 3, high - (high - low) // 3
                priced_left, priced_right = priced(left), priced(right)
                if priced_left is None or priced_right is None:
                    break
                if priced_left[0] <= priced_right[0]:
                    high = right
                else:
                    low = left
            for to_a in range(low, high + 1) if high - low <= 2 else ():
                found = priced(to_a)
                if found is not None and cost is not None and found[0] < cost:
                    cost, best = found
    return best


def _fix_shares(legs: list[PlannedLeg]) -> tuple[PlannedLeg, ...]:
    """Each hop's shares add up to exactly 10 000 bps (the last leg takes the rest)."""
    fixed: list[PlannedLeg] = []
    for hop in sorted({leg.hop for leg in legs}):
        of_hop = [leg for leg in legs if leg.hop == hop]
        taken = sum(leg.share_bps for leg in of_hop[:-1])
        fixed += of_hop[:-1]
        last = of_hop[-1]
        fixed.append(
            PlannedLeg(
                last.hop,
                last.dex,
                last.pool,
                last.token_in,
                last.token_out,
                last.amount_in,
                last.amount_out,
                last.fee_amount,
                BPS - taken,
                last.bins_crossed,
            )
        )
    return tuple(fixed)


def _impact(kept: float) -> int:
    return max(0, round((1 - kept) * BPS))
