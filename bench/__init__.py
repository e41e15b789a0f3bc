"""Benchmark of the serving path: dynamic batching on vs off, load from wrk (`python -m bench`)."""
