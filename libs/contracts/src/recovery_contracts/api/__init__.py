"""Public HTTP bodies of the API, in Hyperswitch v2 field names."""
