"""Fixtures shared by the engine and reading tests. moto_server / s3 / bucket_factory come
from tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support import many_entries
from support.seed import empty_and_delete_bucket


@pytest.fixture(scope="session")
def many_entries_archive(s3) -> Iterator[many_entries.ManyEntries]:
    """The > 65,535-entry archive, made once for every test of that path (the engine's
    records, ls, extract, restore, verify): archiving 70,000 entries is the cost."""
    made = many_entries.make(s3)
    yield made
    empty_and_delete_bucket(s3, made.bucket)
