"""Persistence: PostgreSQL tables and queries, Redis event fan-out and the active set."""
