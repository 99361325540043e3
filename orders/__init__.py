"""The orders domain: placing, reading, cancelling and re-driving orders, and what
their workflows record. The API routes, the CLI, the reconciler and the activities all
call in here (service.py, placement.py); queries live in repository.py, the public
shapes in schemas.py."""
