"""MongoDB stores of the read side: the event log, the views, the daily figures; the rebuild."""
