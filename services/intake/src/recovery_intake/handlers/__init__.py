"""Intake's use cases, one module per thing a caller can do: load, ask the domain, save with the messages."""
