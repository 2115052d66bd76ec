"""Shared test infrastructure: moto server, seeding helpers, the zip reader matrix.

Importable as `support` from tests (tests/ is on sys.path, see tests/conftest.py)
and as `tests.support` from the repository root (demo, benchmarks).
"""
