"""Owners' money: each owner's wallet (its keypair and address), balances (total and
what open orders have reserved) and each order's reservation. Placement reserves, the
chain spends and releases, the API shows; none of them writes these tables but through
here (tests/unit/test_layers.py). Independent of the simulated market, so the real chain
plugs into the same wallets.

repository.py: the queries, each taking the caller's session (the caller owns the
transaction). service.py: `Wallets`, what opens sessions (view, fund, keypairs)."""
