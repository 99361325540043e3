"""Choose the route that yields the most `token_out`, net of fees and price impact.

Candidates: everything on one venue, or a split in 5 % steps between two venues. With
two venues there are only 21 ways to split at that granularity, so the router simply
prices them all: no heuristic, and the single-venue routes are among them.
"""

from __future__ import annotations

from dataclasses import dataclass

from market.pools import Pool

SPLIT_CHUNKS = 20  # 5 % each


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


def best_route(pools: list[Pool], token_in: str, amount_in: int) -> Route:
    """The best of all-on-one-pool and every 5 % split between the two best pools."""
    if not pools:
        raise ValueError("no pool trades this pair")
    singles = sorted(
        (_route([(p, amount_in)], token_in) for p in pools), key=lambda r: r.amount_out, reverse=True
    )
    best = singles[0]
    if len(pools) > 1:
        by_dex: dict[str, Pool] = {p.dex: p for p in pools}
        a, b = by_dex[singles[0].selected_dex], by_dex[singles[1].selected_dex]
        chunks = split_amounts(amount_in)
        # Both orders: the chunks differ by one base unit, and so can the outputs.
        for first, second in ((a, b), (b, a)):
            for k in range(1, SPLIT_CHUNKS):
                to_first = sum(chunks[:k])
                candidate = _route([(first, to_first), (second, amount_in - to_first)], token_in)
                # Strictly better only: at a tie one leg is cheaper to execute than two.
                if candidate.amount_out > best.amount_out:
                    best = candidate
    return best


def split_amounts(amount_in: int, chunks: int = SPLIT_CHUNKS) -> list[int]:
    """`amount_in` cut into `chunks` near-equal integer parts that add up exactly."""
    size, rest = divmod(amount_in, chunks)
    return [size + (1 if i < rest else 0) for i in range(chunks)]


def _route(allocation: list[tuple[Pool, int]], token_in: str) -> Route:
    legs = tuple(
        Leg(pool.dex, amount, pool.swap_exact_in(token_in, amount).amount_out)
        for pool, amount in allocation
        if amount > 0
    )
    return Route("split" if len(legs) > 1 else legs[0].dex, legs)
