"""Simulated searchers: they sandwich public transactions that are worth it.

A searcher sees a pending swap, the pool it trades and the minimum it accepts. It buys
ahead of it (the victim then fills at a worse price), lets it execute, and sells back
right after; all three are real trades on the pool. It sizes its front-run so that the
victim still fills, at `bite` of the way from its clean fill down to its minimum: never
below the minimum, since a victim that fails pays the searcher nothing.

Odds and bite grow with what the victim is worth (v, in SOL) and the slack it leaves
(s, bps between its clean fill and its minimum): a = (v / 100) · (s / 100),
odds = a / (a + 5), bite = a / (a + 1). A 300-SOL order at 500 bps (a = 15): odds 0.75,
bite 0.94; a 1-SOL order at 50 bps (a = 0.005): odds 0.001.
"""

from __future__ import annotations

from dataclasses import dataclass

from market.pools import Pool

SEARCH_STEPS = 24  # binary search of the front-run size


@dataclass(frozen=True)
class Sandwich:
    front_in: int  # what the searcher swapped ahead of the victim (the victim's input token)
    front_out: int
    before_victim: Pool  # the pool as the victim finds it


def attraction(value_sol: float, slack_bps: float) -> float:
    return max(value_sol, 0.0) / 100 * max(slack_bps, 0.0) / 100


def sandwich_odds(value_sol: float, slack_bps: float) -> float:
    a = attraction(value_sol, slack_bps)
    return a / (a + 5)


def bite(value_sol: float, slack_bps: float) -> float:
    a = attraction(value_sol, slack_bps)
    return a / (a + 1)


def slack_bps(clean_out: int, min_out: int) -> float:
    """How far below its clean fill the victim's minimum lies."""
    return (clean_out - min_out) / clean_out * 10_000 if clean_out > 0 else 0.0


def front_run(
    pool: Pool, token_in: str, amount_in: int, min_out: int, clean_out: int, share: float, now: float
) -> Sandwich | None:
    """The largest front-run (up to 10× the victim's input) after which the victim still
    gets at least clean_out - share·(clean_out - min_out); None if none is worth doing."""
    target = max(min_out, clean_out - int(share * (clean_out - min_out)))
    if target >= clean_out:
        return None
    low, high = 0, amount_in * 10
    best: Sandwich | None = None
    for _ in range(SEARCH_STEPS):
        if high - low <= 1:
            break
        size = (low + high) // 2
        front, after_front = pool.swap(token_in, size, now)
        victim, _ = after_front.swap(token_in, amount_in, now)
        if front.complete and victim.complete and victim.amount_out >= target:
            low, best = size, Sandwich(size, front.amount_out, after_front)
        else:
            high = size
    return best
