"""The wire contract of the revenue-recovery engine: what other teams import."""
