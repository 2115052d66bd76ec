"""The parallel path of the definition (workers > 1): its structure, and its routing run by
moto's interpreter with the engine replaced by scripted answers (the engine's own parallel
verbs are exercised end to end in test_workflow_parallel.py). What this pins: the phases
route Plan -> Segments (a Distributed Map over plan.json, at most `workers` children at a
time) -> CheckSegments -> Assemble -> Finish; a segment failing transiently suspends the
parent, a permanent failure aborts it, and neither assembles."""

from __future__ import annotations

import json
import threading
import time

import pytest

from bucketzip.errors import AccessDenied, RetryableError
from bucketzip.local.definition import definition_path

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


@pytest.fixture(scope="module")
def definition():
    return json.loads(definition_path().read_text())


def test_phases_route_the_loop(definition):
    choices = definition["States"]["IsArchived"]["Choices"]
    routes = {c["StringEquals"]: c["Next"] for c in choices if c.get("Variable") == "$.progress.phase"}
    assert routes == {"segments": "Segments", "planning": "Plan", "assembling": "Assemble"}
    assert choices[0]["Next"] == "Segments"  # before "done": a planned run has done=true
    assert definition["States"]["IsArchived"]["Default"] == "Step"  # one worker: as before
    for loop in ("Plan", "Assemble"):
        assert definition["States"][loop]["Next"] == "Count"  # counted: continuation covers them
    count = definition["States"]["Count"]["Parameters"]
    assert (count["workers.$"], count["plan.$"]) == ("$.workers", "$.plan")


def test_segments_is_a_distributed_map_over_the_plan(definition):
    segments = definition["States"]["Segments"]
    assert segments["Type"] == "Map"
    assert segments["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    reader = segments["ItemReader"]
    assert reader["Resource"] == "arn:aws:states:::s3:getObject"
    assert reader["ReaderConfig"] == {"InputType": "JSON"}
    assert reader["Parameters"] == {"Bucket.$": "$.plan.bucket", "Key.$": "$.plan.key"}
    assert segments["MaxConcurrencyPath"] == "$.workers"
    assert segments["ItemSelector"] == {"run_id.$": "$.run_id", "index.$": "$$.Map.Item.Value.index"}
    assert segments["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Suspend"}]
    assert (segments["Next"], definition["States"]["CheckSegments"]["Next"]) == ("CheckSegments", "Assemble")
    children = segments["ItemProcessor"]["States"]
    assert children["SegmentSuspended"]["Parameters"]["transient"] is True
    assert children["SegmentFailed"]["Parameters"]["transient"] is False
    assert children["SegmentDone"]["Result"] == {}  # a complete segment reports back nothing
    for name in ("SegmentStart", "SegmentStep", "SegmentFinish"):
        assert children[name]["Parameters"]["action"] == name[len("Segment") :].lower()


class Script:
    """Scripted answers of the engine's verbs, as the handlers would return them."""

    def __init__(self, s3, dest: str, shards: int, workers: int = 3, fail: dict | None = None):
        self.s3, self.dest, self.workers = s3, dest, workers
        self.fail = fail or {}  # shard index -> exception raised by its step
        self.calls: list[tuple] = []
        self.lock = threading.Lock()
        self.running = 0
        self.most_running = 0
        s3.put_object(Bucket=dest, Key="plan.json", Body=json.dumps([{"index": i} for i in range(shards)]).encode())

    def progress(self, phase: str, done: bool) -> dict:
        return {"run_id": "P", "phase": phase, "done": done, "dest_bucket": self.dest}

    def start(self, event, context, call):
        return {
            "run_id": "P",
            "generation": 0,
            "loops": 0,
            "loops_per_execution": 100,
            "progress": self.progress("planning", False),
            "schedule": None,
            "workers": self.workers,
            "plan": {"bucket": self.dest, "key": "plan.json"},
        }

    def plan(self, event, context, call):
        self.calls.append(("plan",))
        planned = sum(1 for c in self.calls if c[0] == "plan") >= 2  # two planning steps
        return self.progress("segments" if planned else "planning", planned)

    def segment(self, event, context, call):
        if event["action"] == "check":
            self.calls.append(("check",))
            return call(event, context)  # the real verdict
        with self.lock:
            self.calls.append((event["action"], event["index"]))
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            time.sleep(0.05)
            if event["action"] == "step" and event["index"] in self.fail:
                raise self.fail[event["index"]]
            return {
                "start": self.progress("archiving", False),
                "step": self.progress("archiving", True),
                "finish": self.progress("complete", True),
            }[event["action"]]
        finally:
            with self.lock:
                self.running -= 1

    def assemble(self, event, context, call):
        self.calls.append(("assemble",))
        return self.progress("assembling", sum(1 for c in self.calls if c[0] == "assemble") >= 2)

    def finish(self, event, context, call):
        self.calls.append(("finish",))
        return {"complete": True, "archive": {"run_id": "P", "bucket": self.dest, "key": "a.zip"}}

    def install(self, workflow) -> None:
        for name in ("start", "plan", "segment", "assemble", "finish"):
            workflow.intercept(name, getattr(self, name))


def test_parallel_run_plans_maps_checks_assembles_finishes(workflow, buckets, s3):
    _, dest = buckets
    script = Script(s3, dest, shards=5, workers=3)
    script.install(workflow)
    outcome = workflow.run({"workers": 3})
    assert outcome.succeeded, (outcome.error, outcome.cause)
    assert outcome.output == {"run_id": "P", "bucket": dest, "key": "a.zip"}
    kinds = [c[0] for c in script.calls]
    assert kinds[:2] == ["plan", "plan"] and kinds[-4:] == ["check", "assemble", "assemble", "finish"]
    for action in ("start", "step", "finish"):
        assert sorted(c[1] for c in script.calls if c[0] == action and len(c) == 2) == list(range(5))
    assert 1 < script.most_running <= 3  # MaxConcurrency = workers
    check = [i.event for i in workflow.invocations("segment") if i.event.get("action") == "check"]
    assert check == [{"action": "check", "run_id": "P", "results": [{}] * 5}]  # children report back nothing


def test_a_segment_failing_transiently_suspends_the_parent(workflow, buckets, s3):
    _, dest = buckets
    script = Script(s3, dest, shards=4, fail={2: RetryableError("S3 SlowDown")})
    script.install(workflow)
    outcome = workflow.run({"workers": 2})
    assert outcome.status == "FAILED" and outcome.error == "RetryableError", outcome.cause
    assert "segment(s) 2 (RetryableError) failed with transient errors" in outcome.cause
    assert ("assemble",) not in script.calls and ("finish",) not in script.calls
    steps_of_2 = [c for c in script.calls if c == ("step", 2)]
    assert len(steps_of_2) == 7  # retried in the child (6 retries) before it gave up
    (suspend,) = [i.event for i in workflow.invocations("abort")]
    assert suspend["suspend"] is True  # kept, resumable: not aborted


def test_a_segment_failing_permanently_aborts_the_parent(workflow, buckets, s3):
    _, dest = buckets
    script = Script(s3, dest, shards=4, fail={1: AccessDenied("s3://src/k: access denied")})
    script.install(workflow)
    outcome = workflow.run({"workers": 2})
    assert outcome.status == "FAILED" and outcome.error == "SegmentFailed", outcome.cause
    assert "segment(s) 1 (AccessDenied)" in outcome.cause
    assert [c for c in script.calls if c == ("step", 1)] == [("step", 1)]  # not retried
    assert ("assemble",) not in script.calls
    (abort,) = [i.event for i in workflow.invocations("abort")]
    assert "suspend" not in abort and abort["error"]["Error"] == "SegmentFailed"


def test_an_empty_plan_goes_straight_to_assembly(workflow, buckets, s3):
    _, dest = buckets
    script = Script(s3, dest, shards=0)
    script.install(workflow)
    outcome = workflow.run({"workers": 4})
    assert outcome.succeeded, (outcome.error, outcome.cause)
    assert [c[0] for c in script.calls] == ["plan", "plan", "check", "assemble", "assemble", "finish"]
