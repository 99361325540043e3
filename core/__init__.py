"""What every process shares: settings, Temporal names, ids, logging."""
