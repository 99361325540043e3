"""`make bench`: the engine against a bare Temporal floor, on one embedded stack, in one run.

Sections (see `python -m bench`):
1. floor   - a workflow of 5 sequential no-op regular activities (bench/floor.py);
2. engine  - the real `worker` and `api` processes, simulated latencies 0, limits lifted:
             POST /orders → CONFIRMED on the WebSocket, one at a time and 30 in flight;
3. router  - `market.router.best_route` decision time on the SOL/USDC pools;
4. load    - POST /orders answer time at a fixed open-loop rate;
5. waiting - 2 000 limit orders WAITING far from their limit: placement rate, idle CPU per
             process, Temporal history length, quotes caused (none), the market watcher's cost
             per tick, and a linear extrapolation to 10 000.

Results: a table on stdout, JSON in bench/results/<UTC timestamp>.json and latest.json.
"""
