"""Seeded, replayable faults for a real boto3 S3 client (botocore event hooks, so the SDK's
own parsing and the engine's error translation run for real), and seeded step splits.

Every decision is a pure function of (seed, operation, request identity, attempt number
of that request), never of the order in which threads happen to call: the same seed
injects the same faults into the same requests, however the prefetch pool interleaves.

Faults:
  - 503 SlowDown answered instead of sending the request (GetObject, UploadPart,
    PutObject, ListObjectsV2, HeadObject), as S3 answers once the SDK's retries ran out;
  - a GetObject body cut at a seeded byte: the bytes before it arrive, then a real
    ResponseStreamingError (connection reset), as botocore raises for a broken stream;
  - a slow GetObject body (a seeded pause before it arrives), which reorders the pool;
  - Ctrl-C: KeyboardInterrupt on the writer's thread after a seeded chunk;
  - step splits: a deadline that expires after a seeded number of chunks.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import boto3
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ResponseStreamingError

from bucketzip.deadline import Deadline

FAULTED_OPERATIONS = ("GetObject", "UploadPart", "PutObject", "ListObjectsV2", "HeadObject")


def draw(seed: int, *parts: object) -> float:
    """A number in [0, 1) fixed by the seed and `parts` (no shared random stream)."""
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass
class FaultPlan:
    """How often each fault strikes; all zero: a clean client."""

    seed: int
    p_503: float = 0.0
    p_cut: float = 0.0
    p_slow: float = 0.0
    slow_seconds: float = 0.02
    injected: Counter = field(default_factory=Counter)  # fault kind -> times injected


class _FaultyBody:
    """A GetObject body that arrives late, or breaks after `cut_at` bytes."""

    def __init__(self, body, cut_at: int | None, delay: float):
        self.body, self.cut_at, self.delay = body, cut_at, delay

    def read(self, amt: int | None = None) -> bytes:
        if self.delay:
            time.sleep(self.delay)
            self.delay = 0.0
        if self.cut_at is None:
            return self.body.read() if amt is None else self.body.read(amt)
        self.body.read(self.cut_at)  # some bytes arrive, then the connection resets
        raise ResponseStreamingError(error=ConnectionResetError(104, "injected: connection reset by peer"))

    def close(self) -> None:
        self.body.close()


def faulty_s3_client(plan: FaultPlan, endpoint_url: str | None = None):
    """A real S3 client into which `plan` injects its faults. A 503 is answered before the
    request is sent (the SDK's retries are then skipped: the engine sees what S3 gives
    once they ran out); bodies are wrapped once botocore has parsed the response."""
    client = boto3.client("s3", endpoint_url=endpoint_url)
    attempts: Counter = Counter()
    lock = threading.Lock()

    def identify(params, model, context, **_):
        ident = (model.name, params.get("Key"), params.get("Range"), params.get("PartNumber"))
        with lock:
            attempts[ident] += 1
            context["fault"] = (ident, attempts[ident])

    def before_call(model, context, **_):
        fault = context.get("fault")
        if fault is None or model.name not in FAULTED_OPERATIONS:
            return None
        if draw(plan.seed, "503", *fault) >= plan.p_503:
            return None
        with lock:
            plan.injected["503"] += 1
        http = AWSResponse("https://injected", 503, {}, None)
        error = {"Code": "SlowDown", "Message": "injected: reduce your request rate"}
        return http, {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 503, "HTTPHeaders": {}}}

    def after_get(parsed, context, **_):
        fault = context.get("fault")
        if fault is None or "Body" not in parsed:
            return
        cut_at, delay = None, 0.0
        length = int(parsed.get("ContentLength") or 0)
        if length and draw(plan.seed, "cut", *fault) < plan.p_cut:
            cut_at = int(draw(plan.seed, "cut-at", *fault) * length)
        if draw(plan.seed, "slow", *fault) < plan.p_slow:
            delay = plan.slow_seconds * draw(plan.seed, "slow-by", *fault)
        if cut_at is None and not delay:
            return
        with lock:
            plan.injected["cut" if cut_at is not None else "slow"] += 1
        parsed["Body"] = _FaultyBody(parsed["Body"], cut_at, delay)

    client.meta.events.register("before-parameter-build.s3", identify)
    client.meta.events.register("before-call.s3", before_call)
    client.meta.events.register("after-call.s3.GetObject", after_get)
    return client


class ChunkDeadline(Deadline):
    """A step deadline that expires once the writer has asked `after` times (it asks
    once per chunk written): step splits at seeded chunk boundaries, with no clock."""

    def __init__(self, after: int):
        super().__init__(None)
        self.after, self.asked = after, 0

    def expired(self) -> bool:
        self.asked += 1
        return self.asked >= self.after


@dataclass
class Interrupter:
    """The observer the writer calls after each chunk (on its own thread, as Ctrl-C
    interrupts the main thread): raises KeyboardInterrupt at chunk numbers `at`."""

    at: set[int]
    seen: int = 0
    fired: int = 0
    on_chunk: Callable[[int, int], None] | None = None

    def __call__(self, source_bytes: int, entries: int) -> None:
        self.seen += 1
        if self.seen in self.at:
            self.fired += 1
            raise KeyboardInterrupt(f"injected Ctrl-C after chunk {self.seen}")
