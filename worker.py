"""The Temporal worker: `python worker.py` (or `order-engine worker`). See processes/worker.py."""

from processes.worker import main

if __name__ == "__main__":
    main()
