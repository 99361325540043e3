"""What workflows and activities exchange: one dataclass per step's input and result,
the retry policy's numbers, and the names clients use to reach a workflow.

Neutral ground: it imports only `core`, so workflows, activities and the domain services
can all depend on it without depending on each other. Amounts are integers in base
units; formatting for people happens where something is shown (orders/transitions.py).
"""
