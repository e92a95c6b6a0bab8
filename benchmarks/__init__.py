"""Benchmarks: the serving benchmark compares `mlops serve` with MLServer and KServe."""
