"""`make bench`: the engine against a bare Temporal floor, on one embedded stack, in one run.

Each section (`bench.sections.Section`) lives in the module that measures it, with its
constants and table names; `bench/__main__.py` lists them in the order they run
(`python -m bench --list` names them, `--only NAME,…` runs a few). Among them:
- floor   - a workflow of 5 sequential no-op regular activities (bench/floor.py);
- engine  - the real `worker` and `api` processes, simulated latencies 0, limits lifted:
            POST /orders → CONFIRMED on the WebSocket, one at a time and 30 in flight;
- router  - `market.router.best_route` decision time on the SOL/USDC pools;
- load    - POST /orders answer time at a fixed open-loop rate;
- waiting - 2 000 limit orders WAITING far from their limit: placement rate, idle CPU per
            process, Temporal history length, quotes caused (none), the market watcher's cost
            per tick, and a linear extrapolation to 10 000.

Results: a table on stdout, JSON in bench/results/<UTC timestamp>.json and latest.json.
"""
