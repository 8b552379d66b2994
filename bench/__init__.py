"""Benchmarks: real runs over loopback HTTP, numbers written to files (never timed tests)."""
