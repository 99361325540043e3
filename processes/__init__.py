"""What each command runs: the worker process, the API server, `order-engine dev`.
Each assembles its per-process clients (one Temporal client, DB engine and Redis
client) once, at startup, and hands them to the domain services."""
