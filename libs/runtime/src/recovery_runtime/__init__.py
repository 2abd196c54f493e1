"""Service plumbing shared by the four services: settings, broker, MongoDB, unit of work, logging, metrics."""
