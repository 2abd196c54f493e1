"""The dispatcher's pure part: webhook body, signatures, delivery verdicts, retry schedule (no I/O)."""
