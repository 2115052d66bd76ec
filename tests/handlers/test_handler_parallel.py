"""The parallel path's front doors: the execution input's "workers" (and its limits), what
Start hands the Distributed Map, the segment/plan/assemble handlers' events, and the
parent's verdict on the children's results (CheckSegments)."""

from __future__ import annotations

import pytest

from bucketzip.errors import InputError, RetryableError, SegmentFailed
from bucketzip.plan import plan_key
from handlers import segment, start

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

GOOD = {"source_bucket": "photos", "dest_bucket": "archives", "dest_key": "a.zip"}


def start_event(execution_input, name="nightly"):
    return {"input": execution_input, "execution_name": name}


@pytest.mark.parametrize(
    "workers, words",
    [
        (0, ["workers", "greater than or equal to 1"]),
        (1001, ["workers", "less than or equal to 1000"]),
        ("many", ["workers", "integer"]),
    ],
)
def test_start_refuses_bad_workers_naming_the_field(workers, words, fake_engine, context):
    with pytest.raises(InputError) as error:
        start.handler(start_event({**GOOD, "workers": workers}), context)
    assert all(word in str(error.value) for word in words), str(error.value)
    assert fake_engine.calls == []


def test_start_refuses_more_workers_than_segments_can_run(fake_engine, context, monkeypatch):
    monkeypatch.setenv("BUCKETZIP_MAX_WORKERS", "100")
    with pytest.raises(InputError, match="workers: 101 is more than the 100 segments .* segment_reserved_concurrency"):
        start.handler(start_event({**GOOD, "workers": 101}), context)
    assert fake_engine.calls == []


def test_one_worker_runs_as_before(fake_engine, context):
    result = start.handler(start_event(GOOD), context)
    assert (result["workers"], result["plan"]) == (1, None)


def test_a_resumed_parallel_run_gets_its_workers_and_plan_back(fake_engine, context):
    """{"resume": RUN_ID} re-enters a parallel run at its phase: the Map needs the run's
    MaxConcurrency and plan location again (from its state, not the resume input)."""
    fake_engine.store.workers = 3
    result = start.handler(start_event({"resume": "nightly"}, name="resume-1"), context)
    assert result["workers"] == 3
    assert result["plan"] == {"bucket": "dst", "key": plan_key("nightly")}


@pytest.mark.parametrize(
    "event, words",
    [
        ({"action": "start", "run_id": "P"}, ["index", "Field required"]),
        ({"action": "start", "run_id": "P", "index": -1}, ["index", "greater than or equal to 0"]),
        ({"action": "explode", "run_id": "P", "index": 0}, ["action", "'start', 'step' or 'finish'"]),
        ({"action": "check", "run_id": "P"}, ["results", "Field required"]),
    ],
)
def test_segment_events_are_validated(event, words, fake_engine, context):
    with pytest.raises(InputError) as error:
        segment.handler(event, context)
    assert all(word in str(error.value) for word in words), str(error.value)


@pytest.fixture
def check(context):
    return lambda results: segment.handler({"action": "check", "run_id": "P", "results": results}, context)


def test_all_segments_complete(check):
    assert check([{}, {}, {}]) == {"segments": 3}
    assert check([]) == {"segments": 0}  # an empty selection: no shards


def test_transient_failures_suspend(check):
    with pytest.raises(RetryableError, match=r"segment\(s\) 1 \(States.Timeout\), 2 \(RetryableError\)"):
        check(
            [
                {},
                {"index": 1, "Error": "States.Timeout", "transient": True},
                {"index": 2, "Error": "RetryableError", "transient": True},
            ]
        )


def test_a_child_that_failed_outside_its_catch_counts_as_transient(check):
    """A null result: the child ended without reporting (moto; on AWS the Map itself fails)."""
    with pytest.raises(RetryableError, match=r"segment\(s\) 1 \(unknown\)"):
        check([{}, None])


def test_any_permanent_failure_aborts_naming_only_those(check):
    with pytest.raises(SegmentFailed) as error:
        check(
            [
                {"index": 0, "Error": "RetryableError", "transient": True},
                {"index": 1, "Error": "AccessDenied", "transient": False},
            ]
        )
    assert "segment(s) 1 (AccessDenied) failed" in str(error.value) and "0 (" not in str(error.value)


def test_long_failure_lists_are_cut(check):
    results = [{"index": i, "Error": "RetryableError", "transient": True} for i in range(25)]
    with pytest.raises(RetryableError) as error:
        check(results)
    assert "9 (RetryableError) and 15 more" in str(error.value)
