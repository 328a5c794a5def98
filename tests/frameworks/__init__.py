"""Real frameworks served end to end, each case checked against a reference server."""
