"""The HTTP API of intake, in Hyperswitch v2 paths and field names."""
