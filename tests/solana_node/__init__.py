"""A Solana JSON-RPC node of our own for the tests: the methods the engine uses, over
fixture account state, executing transactions with the venues' swap math (no network)."""
