"""Choose the route that yields the most `token_out`, net of fees and price impact.

Candidates: everything on one venue, or a split in 5 % chunks where each chunk goes to
the venue whose next chunk pays the most. Constant-product output is concave in the
input, so this greedy allocation is the best split at that granularity.
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
    """The best of: all on one pool, or a chunked split across pools."""
    if not pools:
        raise ValueError("no pool trades this pair")
    candidates = [
        Route(p.dex, (Leg(p.dex, amount_in, p.swap_exact_in(token_in, amount_in).amount_out),)) for p in pools
    ]
    if len(pools) > 1:
        candidates.append(_greedy_split(pools, token_in, amount_in))
    # Ties go to the single venue (one leg is cheaper to execute than two).
    return max(candidates, key=lambda r: (r.amount_out, -len(r.legs)))


def split_amounts(amount_in: int, chunks: int = SPLIT_CHUNKS) -> list[int]:
    """`amount_in` cut into `chunks` near-equal integer parts that add up exactly."""
    size, rest = divmod(amount_in, chunks)
    return [size + (1 if i < rest else 0) for i in range(chunks)]


def _greedy_split(pools: list[Pool], token_in: str, amount_in: int) -> Route:
    allocated = {p.dex: 0 for p in pools}
    for chunk in split_amounts(amount_in):
        if chunk == 0:
            continue

        def marginal(pool: Pool, chunk: int = chunk) -> int:
            already = allocated[pool.dex]
            return (
                pool.swap_exact_in(token_in, already + chunk).amount_out
                - pool.swap_exact_in(token_in, already).amount_out
            )

        allocated[max(pools, key=marginal).dex] += chunk
    legs = tuple(
        Leg(p.dex, allocated[p.dex], p.swap_exact_in(token_in, allocated[p.dex]).amount_out)
        for p in pools
        if allocated[p.dex] > 0
    )
    return Route("split" if len(legs) > 1 else legs[0].dex, legs)
