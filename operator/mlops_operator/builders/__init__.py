"""Manifest builders: pure functions from a spec to the Kubernetes objects it needs."""
