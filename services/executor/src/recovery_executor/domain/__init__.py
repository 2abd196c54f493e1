"""The executor's pure part: the attempt and its transitions, the charge guard, which accounts may charge,
record backs, follow-up timing, and the messages it emits."""
