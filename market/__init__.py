"""The simulated Solana market: tokens, pools with their swap math, the router.

Everything in here except `simulation.py` is pure (no I/O, no clock), so the
router can run anywhere and the math can be tested on its own.
"""
