"""Accounts: who may call the engine (API keys, owners, the operator role)."""
