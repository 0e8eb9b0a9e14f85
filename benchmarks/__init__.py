"""Benchmarks of the hub integration on the local stack: `make bench` / `python -m benchmarks`.

Kept import-light: the bench hub imports `benchmarks.hubside` from inside JupyterHub.
"""
