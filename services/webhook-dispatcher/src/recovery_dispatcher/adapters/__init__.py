"""The dispatcher's I/O: the webhook HTTP client and its SSRF guard."""
