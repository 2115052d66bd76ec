"""Step and Finish results stay small whatever happens (issue 9, req. 3): 1,200 skipped
objects with long keys (unrestored Glacier objects) once made a 291 KB Step result, which
Step Functions refuses with an uncatchable States.DataLimitExceeded."""

from __future__ import annotations

import json

from botocore.exceptions import ClientError

from bucketzip.config import ArchiveRequest
from bucketzip.deadline import Deadline
from bucketzip.driver import run_to_completion
from bucketzip.results import MAX_RESULT_BYTES, MAX_WARNINGS
from bucketzip.store_local import LocalStateStore
from support.archiving import manifest
from support.synthetic import SyntheticSource

SKIPPED = 1_200


class ArchivedSource(SyntheticSource):
    """Every object under cold/ is in a Glacier storage class and not restored."""

    def get_object(self, **kwargs):
        if not kwargs["Key"].startswith("cold/"):
            return super().get_object(**kwargs)
        raise ClientError({"Error": {"Code": "InvalidObjectState", "Message": "not restored"}}, "GetObject")


def test_results_stay_under_32_kb_with_1200_skipped_objects(s3, bucket_factory, tmp_path):
    dest = bucket_factory("dst")
    sizes = {f"cold/{i:05d}-" + "x" * 250: 10 for i in range(SKIPPED)}
    sizes["warm.txt"] = 5
    source = ArchivedSource(s3, "glacier-source", sizes)
    store = LocalStateStore(tmp_path / "state")
    request = ArchiveRequest.create(source_bucket="glacier-source", dest_bucket=dest, dest_key="cold.zip")
    results: list[dict] = []
    outcome = run_to_completion(
        source, store, request, step_deadline=lambda: Deadline(600), on_step=lambda p: results.append(p.to_json())
    ).result
    results.append(outcome.to_json())
    assert max(len(json.dumps(r).encode()) for r in results) <= MAX_RESULT_BYTES
    step = results[0]
    assert step["skipped"] == SKIPPED and outcome.skipped == SKIPPED
    # the first few warnings, then how many more; every one is in the manifest
    assert len(step["warnings"]) == MAX_WARNINGS + 1
    assert step["warnings"][0].startswith("skipped 'cold/00000-xxx")
    assert f"and {SKIPPED - MAX_WARNINGS} more" in step["warnings"][-1]
    skipped = [line for line in manifest(s3, dest, "cold.zip") if line["type"] == "skipped"]
    assert len(skipped) == SKIPPED and all("not restored" in line["reason"] for line in skipped)
