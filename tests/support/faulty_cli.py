"""`python -m support.faulty_cli ARGS...`: the real `bucketzip` command in a process of its
own, its S3 client faulted by support.faults with the seed in $BUCKETZIP_FAULT_SEED (none
when unset). Ctrl-C (SIGINT) behaves as in a terminal even when the test runner that
starts it ignores SIGINT (a background job does)."""

from __future__ import annotations

import os
import signal
import sys

from bucketzip import cli
from support.faults import FaultPlan, faulty_s3_client


def main() -> int:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    seed = os.environ.get("BUCKETZIP_FAULT_SEED")
    if seed is not None:
        plan = FaultPlan(int(seed), p_503=0.03, p_cut=0.1, p_slow=0.3, slow_seconds=0.2)
        endpoint = os.environ.get("AWS_ENDPOINT_URL")
        cli.s3_client = lambda *_args, **_kwargs: faulty_s3_client(plan, endpoint)  # type: ignore[assignment]
    return cli.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
