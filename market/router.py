"""Choose the route that yields the most `token_out`, net of fees and price impact.

Candidates: everything on one venue, or a split in 5 % steps between the two best
venues. With two venues there are only a few dozen such splits, so the router prices
them all: no heuristic, and the single-venue routes are among them.

The router sees each venue as a function amount_in → amount_out. A quote carries that
function's values at `split_points(amount_in)`, which is every amount the router asks
about, so routing needs no pool state and no second round of quotes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from market.pools import Pool

SPLIT_CHUNKS = 20  # 5 % each

Output = Callable[[int], int]


@dataclass(frozen=True)
class Leg:
    dex: str
    amount_in: int
    amount_out: int


@dataclass(frozen=True)
class Route:
    selected_dex: str  # "raydium", "meteora" or "split"
    legs: tuple[Leg, ...]

    @property
    def amount_out(self) -> int:
        return sum(leg.amount_out for leg in self.legs)


def best_route(outputs: dict[str, Output], amount_in: int) -> Route:
    """The best of all-on-one-venue and every 5 % split between the two best venues."""
    if not outputs:
        raise ValueError("no venue trades this pair")
    singles = sorted(
        (_route([(dex, amount_in)], outputs) for dex in outputs), key=lambda r: r.amount_out, reverse=True
    )
    best = singles[0]
    if len(singles) > 1:
        a, b = singles[0].selected_dex, singles[1].selected_dex
        # Both orders: the chunks differ by one base unit, and so can the outputs.
        for first, second in ((a, b), (b, a)):
            for to_first in _prefix_sums(amount_in)[1:-1]:
                candidate = _route([(first, to_first), (second, amount_in - to_first)], outputs)
                # Strictly better only: at a tie one leg is cheaper to execute than two.
                if candidate.amount_out > best.amount_out:
                    best = candidate
    return best


def split_points(amount_in: int) -> list[int]:
    """Every input amount the router may ask a venue about, in increasing order."""
    prefixes = _prefix_sums(amount_in)
    return sorted(set(prefixes) | {amount_in - p for p in prefixes})


def split_amounts(amount_in: int, chunks: int = SPLIT_CHUNKS) -> list[int]:
    """`amount_in` cut into `chunks` near-equal integer parts that add up exactly."""
    size, rest = divmod(amount_in, chunks)
    return [size + (1 if i < rest else 0) for i in range(chunks)]


def pool_outputs(pools: Iterable[Pool], token_in: str, now: float = 0) -> dict[str, Output]:
    """Each pool as the router sees it."""
    return {
        pool.dex: (lambda amount, pool=pool: pool.quote_swap(token_in, amount, now).amount_out)  # type: ignore[misc]
        for pool in pools
    }


def _prefix_sums(amount_in: int) -> list[int]:
    sums = [0]
    for chunk in split_amounts(amount_in):
        sums.append(sums[-1] + chunk)
    return sums


def _route(allocation: list[tuple[str, int]], outputs: dict[str, Output]) -> Route:
    legs = tuple(Leg(dex, amount, outputs[dex](amount)) for dex, amount in allocation if amount > 0)
    return Route("split" if len(legs) > 1 else legs[0].dex, legs)
