"""The benchmark harness: processes, tokens, load generation and the report."""
