"""MongoDB repositories of records more than one service changes (each behind a port of the runtime)."""
