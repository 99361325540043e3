"""Strategies: TWAP, DCA and brackets, each a workflow whose orders are child orders."""
