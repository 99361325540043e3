"""The real chain: Raydium CPMM and Meteora DLMM on a Solana cluster over JSON-RPC.

Selected by `ORDER_ENGINE_MARKET=rpc` (the simulated market in market/ stays the
default). The venue adapters are pure except for fetching: they decode account bytes
into pool snapshots that market/'s router and swap math run on unchanged, and build the
programs' swap instructions. docs/venues.md tells how to trade on devnet.
"""
