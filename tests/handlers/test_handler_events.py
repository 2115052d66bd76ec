"""The four handlers: event validation (errors name the field), what they ask the
engine, and what they return to the state machine."""

from __future__ import annotations

import json

import pytest

from bucketzip.errors import InputError, RetryableError, StaleState
from bucketzip.run_ids import MAX_RUN_ID
from handlers import abort, common, finish, start, step

# Failure paths publish no metrics by design (Powertools warns; the handlers silence it in Lambda).
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

START_TIME = "2026-03-04T05:06:07.000Z"


def start_event(execution_input, name="nightly-2026-03-04"):
    return {"input": execution_input, "execution_name": name, "execution_start_time": START_TIME}


GOOD = {
    "source_bucket": "photos",
    "dest_bucket": "archives",
    "dest_key": "backups/{source_bucket}/{date:%Y-%m-%d}-{run_id}.zip",
}


# -- start --------------------------------------------------------------------------


def test_start_renders_the_key_at_the_execution_start_and_names_the_run_after_it(fake_engine, context):
    result = start.handler(start_event({**GOOD, "include": "*.jpg", "part_size": "8MiB"}), context)

    ((_, request, run_id),) = fake_engine.calls
    assert run_id == "nightly-2026-03-04"
    assert request.dest_key == "backups/photos/2026-03-04-nightly-2026-03-04.zip"
    assert request.include == ("*.jpg",) and request.part_size == 8 * 1024 * 1024
    assert result["run_id"] == run_id and result["generation"] == 0 and result["loops"] == 0
    assert result["loops_per_execution"] == common.DEFAULT_LOOPS_PER_EXECUTION
    assert result["progress"]["dest_key"] == request.dest_key and result["progress"]["done"] is False


def test_start_ignores_the_parent_execution_marker_and_takes_loops_per_execution(fake_engine, context, monkeypatch):
    monkeypatch.setenv("BUCKETZIP_LOOPS_PER_EXECUTION", "77")
    parent = "arn:aws:states:us-east-1:1:execution:parent:x"
    assert (
        start.handler(start_event({**GOOD, "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID": parent}), context)[
            "loops_per_execution"
        ]
        == 77
    )
    assert start.handler(start_event({**GOOD, "loops_per_execution": 3}), context)["loops_per_execution"] == 3


def test_start_refuses_a_name_reserved_for_continuations(fake_engine, context):
    with pytest.raises(InputError, match="reserved for the continuations"):
        start.handler(start_event(GOOD, name="nightly--continued-1"), context)
    assert fake_engine.calls == []


@pytest.mark.parametrize(
    "change, words",
    [
        ({"dest_bucket": None}, ["dest_bucket", "Field required"]),
        ({"sorce_bucket": "x"}, ["sorce_bucket", "Extra inputs are not permitted"]),
        ({"level": "high"}, ["level"]),
        ({"compression": "zstd"}, ["compression", "'auto', 'store' or 'deflate'"]),
        ({"overwrite": "perhaps"}, ["overwrite"]),
        ({"loops_per_execution": 0}, ["loops_per_execution", "greater than or equal to 1"]),
        ({"part_size": "1KiB"}, ["part_size", "between 5 MiB and 5 GiB"]),
        ({"source_bucket": "Not_A_Bucket!"}, ["source_bucket", "not a valid bucket name"]),
        ({"dest_key": "{nope}.zip"}, ["dest_key", "{nope}"]),
        ({"include": ["[abc"]}, ["include", "[abc"]),
    ],
)
def test_start_rejects_bad_input_naming_the_field(change, words, fake_engine, context):
    execution_input = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(InputError) as error:
        start.handler(start_event(execution_input), context)
    assert all(word in str(error.value) for word in words), str(error.value)
    assert fake_engine.calls == []


@pytest.mark.parametrize(
    "event, words",
    [
        ({"input": ["not", "an", "object"], "execution_name": "x"}, ["input", "dictionary"]),
        ({"input": GOOD}, ["execution_name", "Field required"]),
        ("not even a dict", ["Start event"]),
    ],
)
def test_start_rejects_malformed_events(event, words, fake_engine, context):
    with pytest.raises(InputError) as error:
        start.handler(event, context)
    assert all(word in str(error.value) for word in words), str(error.value)


def test_start_resumes_a_continued_run(fake_engine, context):
    event = start_event(
        {
            "resume": {"run_id": "nightly", "generation": 4, "loops_per_execution": 9},
            "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID": "arn:...",
        },
        name="nightly-4",
    )
    result = start.handler(event, context)
    assert fake_engine.calls == [("resume_run", "nightly")]
    assert (result["run_id"], result["generation"], result["loops"], result["loops_per_execution"]) == (
        "nightly",
        4,
        0,
        9,
    )
    assert result["progress"]["steps"] == 7


def test_start_resumes_a_suspended_run_by_its_id(fake_engine, context):
    """{"resume": "RUN_ID"}: what the cause of a suspended execution tells the user to start."""
    result = start.handler(start_event({"resume": "nightly"}, name="resume-nightly"), context)
    assert fake_engine.calls == [("resume_run", "nightly")]
    assert result["run_id"] == "nightly" and result["loops"] == 0
    assert result["generation"] > 1000  # continuations named apart from the run's earlier ones


def test_start_rejects_a_bad_resume(fake_engine, context):
    with pytest.raises(InputError, match="resume.run_id"):
        start.handler(start_event({"resume": {"generation": 1}}), context)


def test_the_execution_input_offers_every_archive_request_field():
    from bucketzip.config import field_names
    from handlers.models import ExecutionInput

    assert set(field_names()) <= set(ExecutionInput.model_fields)


# -- step ---------------------------------------------------------------------------


def test_step_deadline_is_the_remaining_time_minus_the_safety_margin(fake_engine, context, monkeypatch):
    monkeypatch.setenv("BUCKETZIP_SAFETY_MARGIN_SECONDS", "100")
    result = step.handler({"run_id": "run-1", "execution_name": "x"}, context)
    ((_, run_id, deadline),) = fake_engine.calls
    assert run_id == "run-1"
    assert 790 < deadline.remaining() <= 800
    assert result == fake_engine.step_result.to_json()
    assert {"objects", "bytes_in", "parts", "done"} <= result.keys()


def test_short_lambda_timeouts_keep_most_of_their_time(fake_engine, monkeypatch):
    from bucketzip.local.lambdas import LambdaContext

    step.handler({"run_id": "run-1"}, LambdaContext("f", "arn:f", timeout_seconds=20))
    ((_, _, deadline),) = fake_engine.calls
    assert 14 < deadline.remaining() <= 15  # the margin is at most a quarter


def test_step_metrics_are_per_step_deltas(fake_engine, context, capsys):
    previous = {"objects": 1, "bytes_in": 100, "parts": 0, "skipped": 0}
    step.handler({"run_id": "run-1", "previous": previous}, context)
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    metrics = emf[-1]
    assert metrics["_aws"]["CloudWatchMetrics"][0]["Namespace"]
    assert (metrics["Objects"], metrics["Bytes"], metrics["Parts"], metrics["Skipped"]) == ([2], [200], [1], [0])
    assert metrics["Throughput"][0] > 0


def test_step_event_without_run_id_names_it(fake_engine, context):
    with pytest.raises(InputError, match="run_id: Field required"):
        step.handler({"execution_name": "x"}, context)


def test_a_step_failing_while_another_invocation_committed_is_stale(fake_engine, context, monkeypatch):
    def trips_over_newer_state(*args):
        raise RuntimeError("staged tail vanished")

    monkeypatch.setattr("bucketzip.engine.run_step", trips_over_newer_state)
    fake_engine.store.versions = [3, 4]  # version moved during the step
    with pytest.raises(StaleState, match="another invocation committed"):
        step.handler({"run_id": "run-1"}, context)
    fake_engine.store.versions = [4, 4]  # nobody else committed: the error as is
    with pytest.raises(RuntimeError, match="staged tail vanished"):
        step.handler({"run_id": "run-1"}, context)


def test_retryable_errors_keep_their_class_name(fake_engine, context, monkeypatch):
    def slow_down(*args):
        raise RetryableError("S3 SlowDown")

    monkeypatch.setattr("bucketzip.engine.run_step", slow_down)
    with pytest.raises(RetryableError):
        step.handler({"run_id": "run-1"}, context)


# -- finish -------------------------------------------------------------------------


def test_finish_returns_the_archive_when_complete(fake_engine, context):
    result = finish.handler({"run_id": "run-1", "execution_name": "x"}, context)
    assert result == {"complete": True, "archive": fake_engine.finish_result.to_json()}
    assert {"bucket", "key", "size", "entries", "parts", "manifest_key", "skipped", "duration_seconds"} <= result[
        "archive"
    ].keys()


def test_a_scheduled_run_counts_its_success_per_schedule(fake_engine, context, capsys):
    finish.handler({"run_id": "run-1", "schedule": "photos-nightly"}, context)
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    (scheduled,) = [m for m in metrics if "ScheduledRunsSucceeded" in m]
    assert scheduled["schedule"] == "photos-nightly" and scheduled["ScheduledRunsSucceeded"] == [1.0]
    (definition,) = scheduled["_aws"]["CloudWatchMetrics"]
    assert definition["Dimensions"] == [["service", "schedule"]] and scheduled["service"] == common.SERVICE
    finish.handler({"run_id": "run-1"}, context)  # not started by a schedule: no such metric
    assert "ScheduledRunsSucceeded" not in capsys.readouterr().out


def test_start_carries_the_schedule_through_the_run(fake_engine, context):
    result = start.handler(start_event({**GOOD, "schedule": "photos-nightly"}), context)
    assert result["schedule"] == "photos-nightly"
    ((_, request, _),) = fake_engine.calls  # not an archive setting
    assert not hasattr(request, "schedule")
    assert start.handler(start_event(GOOD, name="other"), context)["schedule"] is None  # always present
    resumed = start.handler(start_event({"resume": {"run_id": "r", "generation": 1, "schedule": "s"}}), context)
    assert resumed["schedule"] == "s"


def test_finish_asks_to_be_called_again(fake_engine, context):
    fake_engine.finish_result = fake_engine.progress(phase="finishing", done=False)
    result = finish.handler({"run_id": "run-1"}, context)
    assert result["complete"] is False and result["progress"]["phase"] == "finishing"


# -- abort --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "execution_input, name, run_id",
    [
        ({"source_bucket": "a"}, "nightly-2026-03-04", "nightly-2026-03-04"),  # a fresh run
        ({"run_id": "someone-else"}, "mine", "mine"),  # input is not trusted
        ({"resume": {"run_id": "nightly", "generation": 2}}, "nightly--continued-2", "nightly"),  # a continuation
        ("not an object", "x" * 80, None),  # derived, capped
    ],
)
def test_abort_cleans_the_run_of_the_execution(execution_input, name, run_id, fake_engine, context):
    event = {
        "execution_name": name,
        "execution_input": execution_input,
        "error": {"Error": "InputError", "Cause": "{}"},
    }
    result = abort.handler(event, context)
    ((_, aborted),) = fake_engine.calls
    assert aborted == result["run_id"] and result["aborted"] is True
    if run_id is not None:
        assert aborted == run_id
    else:
        assert len(aborted) <= MAX_RUN_ID


def test_abort_needs_the_execution_name(fake_engine, context):
    with pytest.raises(InputError, match="execution_name"):
        abort.handler({"execution_input": {}}, context)
