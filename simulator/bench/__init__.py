"""Benchmarks: each prints its figures as it goes and a JSON line last."""
