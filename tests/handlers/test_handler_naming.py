"""Run ids derived from execution names (Start and Abort must agree; watch too)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from bucketzip.run_ids import (
    MAX_RUN_ID,
    continuation_name,
    is_reserved_name,
    run_id_for_execution,
    run_id_of_execution,
)

SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


def test_plain_names_are_kept():
    assert run_id_for_execution("nightly-2026-03-04") == "nightly-2026-03-04"


@given(st.text(min_size=1, max_size=80))
def test_run_ids_are_safe_short_and_deterministic(name):
    run_id = run_id_for_execution(name)
    assert SAFE.match(run_id) and len(run_id) <= MAX_RUN_ID
    assert run_id == run_id_for_execution(name)
    assert len(continuation_name(run_id, 10**8 - 1)) <= 80  # continuation names stay valid
    assert not is_reserved_name(run_id) or is_reserved_name(name)


@given(st.text(min_size=1, max_size=80), st.text(min_size=1, max_size=80))
def test_different_names_get_different_run_ids(a, b):
    if a != b:
        assert run_id_for_execution(a) != run_id_for_execution(b)


def test_continuations_carry_the_run_id():
    assert run_id_of_execution("nightly-3", {"resume": {"run_id": "nightly"}}) == "nightly"
    assert run_id_of_execution("nightly", {"source_bucket": "x"}) == "nightly"
    assert run_id_of_execution("nightly", None) == "nightly"


def test_continuation_names_carry_a_reserved_suffix():
    assert continuation_name("nightly", 2) == "nightly--continued-2"
    assert is_reserved_name("nightly--continued-2")
    # the name a user would pick for a run of its own is not a continuation's
    assert not is_reserved_name("nightly-1") and continuation_name("nightly", 1) != "nightly-1"
