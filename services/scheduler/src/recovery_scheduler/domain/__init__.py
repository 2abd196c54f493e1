"""The scheduler's domain, pure: the `Recovery` aggregate (recovery.py) and the retry planner it asks
(planner.py, `decide_next`, over model.py): which token to charge when, within decline classes (declines.py) and
card-network budgets (budgets.py)."""
