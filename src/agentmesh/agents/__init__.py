"""Ready-made agent handlers (the seed's agent kinds grow here)."""
