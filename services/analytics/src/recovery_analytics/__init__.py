"""The read side: a projection of the recovery events into per-payment views and per-merchant daily figures."""
