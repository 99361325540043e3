"""Temporal activities: everything the order workflow does to the outside world."""
