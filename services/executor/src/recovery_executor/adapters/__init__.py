"""The executor's I/O: MongoDB repositories and payment connectors."""
