"""A metering proxy: it counts the requests and body bytes of every S3 call, by operation
and by *Lambda* (the worker that made the call), and can cap each Lambda's bandwidth.

    python bench/servers.py meter UPSTREAM_PORT [--cap-mbps MB_S] [--cache-bucket B]

It is the latency proxy of servers.py (same forwarding, same cache of the unchanging
source bucket, so moto's whole-object reads per ranged GET are not measured) with two
additions:

- **Counting.** For each (lambda, operation): requests, body bytes the client sent
  (uploaded: UploadPart and PutObject bodies) and body bytes it received (read: GET
  bodies). Headers are not counted. UploadPartCopy moves no body bytes; the bytes it
  places server-side (its x-amz-copy-source-range) are counted apart, as copied.
  Each row also has the first call's start and the last call's end (seconds since the
  reset): when each Lambda, and each of its operations, was busy.
  `GET /__meter__/stats` answers the counts as JSON; `POST /__meter__/reset` zeroes them
  and forgets the plan.
- **A cap per Lambda** (`--cap-mbps`): each Lambda's request bodies and response bodies
  are paced by a token bucket of its own, one per direction (a Lambda's network link is
  full duplex), shared by all of that Lambda's connections. A Lambda's network is what
  limits one worker in AWS (~75 MB/s); the cap emulates it at a size this machine can
  serve, so that 4 workers can be compared with 1 on the same bucket.

Which Lambda made a call is read from the call itself, since every worker of a
`bucketzip archive --workers N` run shares one process and one endpoint. On AWS each
segment run is one Lambda invocation of the Distributed Map (SEGMENTS.md), so a segment
is a Lambda here:
- parts of the archive's upload (UploadPart, UploadPartCopy) whose number lies in a
  shard's range of part numbers (plan.json: first_part..last_part) are that segment's;
- keys under the run's staging prefix that name a segment (a segment's staging prefix
  `<parent's>/s00003/`, or its run id `<parent>.s00003`) belong to that segment (its tails;
  assembly's read of a segment under 5 MiB counts as that segment's too: rare, and small);
- source keys belong to the segment whose shard holds them (past the last shard: the last
  segment's, which lists to the end): the proxy learns the shard ranges from the body of
  the plan (`.../plan.json`) as the planner writes it;
- everything else (a single-worker run, planning, assembly, finish) is the `parent`.
"""

from __future__ import annotations

import argparse
import bisect
import json
import re
import threading
import time
from collections import defaultdict
from typing import Any, BinaryIO
from urllib.parse import parse_qs, unquote

from bench.servers import ObjectCache, ProxyHandler, _Server
from bucketzip.manifest import MANIFEST_SUFFIX

PARENT = "parent"
PIECE = 64 * 1024  # pacing granularity: small enough that 4 connections of one Lambda interleave
BURST_S = 0.01  # a bucket may run this far ahead of its rate (TCP does not pace per byte either)
# a segment run's staging prefix (segments.staging_prefix: <parent's>/s00003/) or its run id
_SEGMENT_RUN = re.compile(r"(?:/s(\d{5})/)|(?:\.s(\d{5})(?:$|[^0-9]))")
STATS_PATH, RESET_PATH = "/__meter__/stats", "/__meter__/reset"


class TokenBucket:
    """Paces a stream of byte counts to `rate` bytes/s, shared by threads: each caller
    reserves the next slot of the link (first come, first served) and sleeps until its
    bytes would have gone out."""

    def __init__(self, rate: float, burst_s: float = BURST_S):
        self.rate, self.burst_s = rate, burst_s
        self.lock = threading.Lock()
        self.free_at = 0.0  # when the link is next free (monotonic seconds)

    def take(self, size: int) -> float:
        """Reserve `size` bytes; returns the seconds to wait before sending them."""
        with self.lock:
            now = time.monotonic()
            start = max(now - self.burst_s, self.free_at)
            self.free_at = start + size / self.rate
            return max(0.0, self.free_at - now)

    def consume(self, size: int) -> None:
        wait = self.take(size)
        if wait > 0:
            time.sleep(wait)


def operation(method: str, key: str, query: dict[str, list[str]], headers: Any) -> str:
    """The S3 operation of a request, from its method, key and query (path-style URLs)."""
    copy = headers.get("x-amz-copy-source") is not None
    if method == "GET":
        if not key:
            if "uploads" in query:
                return "ListMultipartUploads"
            return "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
        return "ListParts" if "uploadId" in query else "GetObject"
    if method == "HEAD":
        return "HeadObject" if key else "HeadBucket"
    if method == "PUT":
        if "partNumber" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        return "CopyObject" if copy else ("PutObject" if key else "CreateBucket")
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
        return "DeleteObjects" if "delete" in query else "Post"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    return method


class Plan:
    """Shard ranges by first key: source key -> segment index (SEGMENTS.md's plan.json:
    a JSON array of {"index", "start_after", "last_key", ...}; a shard holds the keys
    after `start_after` up to and including `last_key`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last_keys: list[str] = []
        self.indexes: list[int] = []
        self.start_after: list[str | None] = []
        self.parts: list[tuple[int, int, int]] = []  # (first part, last part, index)

    def learn(self, body: bytes) -> None:
        try:
            shards = sorted(json.loads(body), key=lambda s: s["last_key"])
            last_keys = [s["last_key"] for s in shards]
            indexes = [int(s["index"]) for s in shards]
            starts = [s.get("start_after") for s in shards]
            parts = sorted(
                (int(s["first_part"]), int(s["last_part"]), int(s["index"])) for s in shards if "first_part" in s
            )
        except (ValueError, TypeError, KeyError):
            return  # not a plan this proxy understands: calls stay the parent's
        with self.lock:
            self.last_keys, self.indexes, self.start_after, self.parts = last_keys, indexes, starts, parts

    def segment_of_part(self, number: int) -> int | None:
        with self.lock:
            at = bisect.bisect_right(self.parts, (number, float("inf"), 0)) - 1
            if at < 0 or not self.parts[at][0] <= number <= self.parts[at][1]:
                return None
            return self.parts[at][2]

    def segment_of(self, key: str) -> int | None:
        with self.lock:
            at = bisect.bisect_left(self.last_keys, key)
            if at == len(self.last_keys):  # the last segment lists to the end of the selection
                return self.indexes[-1] if self.indexes else None
            start = self.start_after[at]
            if start is not None and key <= start:
                return None
            return self.indexes[at]


class Meter:
    """Counts by (lambda, operation), the plan, and the per-Lambda token buckets."""

    def __init__(self, cap_bytes_per_s: float | None, source_bucket: str):
        self.cap = cap_bytes_per_s
        self.source_bucket = source_bucket
        self.plan = Plan()
        self.lock = threading.Lock()
        # requests, uploaded, read, copied, first call's start and last call's end (monotonic)
        self.counts: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0, 0, 0, float("inf"), 0.0])
        self.since = time.monotonic()
        self.buckets: dict[tuple[str, str], TokenBucket] = {}

    def lambda_of(self, method: str, bucket: str, key: str, part: int | None = None) -> str:
        if bucket == self.source_bucket:
            index = self.plan.segment_of(key) if key else None
            return PARENT if index is None else f"segment {index}"
        if part is not None and not key.endswith(MANIFEST_SUFFIX):  # the manifest's parts are the parent's
            index = self.plan.segment_of_part(part)
            return PARENT if index is None else f"segment {index}"
        found = _SEGMENT_RUN.search(key)
        if found is not None:
            return f"segment {int(found.group(1) or found.group(2))}"
        return PARENT

    def bucket(self, name: str, direction: str) -> TokenBucket | None:
        if not self.cap:
            return None
        with self.lock:
            found = self.buckets.get((name, direction))
            if found is None:
                found = self.buckets[(name, direction)] = TokenBucket(self.cap)
            return found

    def add(self, name: str, op: str, requests: int = 0, sent: int = 0, received: int = 0, copied: int = 0) -> None:
        with self.lock:
            row = self.counts[(name, op)]
            row[0] += requests
            row[1] += sent
            row[2] += received
            row[3] += copied

    def span(self, name: str, op: str, started: float, ended: float) -> None:
        with self.lock:
            row = self.counts[(name, op)]
            row[4], row[5] = min(row[4], started), max(row[5], ended)

    def snapshot(self) -> dict[str, dict[str, dict[str, int]]]:
        with self.lock:
            out: dict[str, dict[str, dict[str, int]]] = {}
            for (name, op), (requests, sent, received, copied, first, last) in sorted(self.counts.items()):
                out.setdefault(name, {})[op] = {
                    "requests": int(requests),
                    "uploaded": int(sent),
                    "read": int(received),
                    "copied": int(copied),
                    # seconds since the last reset: the first call's start, the last one's end
                    "first": round(first - self.since, 3) if requests else None,
                    "last": round(last - self.since, 3) if requests else None,
                }
            return out

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()
            self.buckets.clear()
            self.since = time.monotonic()
        self.plan.learn(b"[]")  # the next run plans (or not) afresh


_COPY_RANGE = re.compile(r"^bytes=(\d+)-(\d+)$")


def _copy_length(headers: Any) -> int:
    """Bytes an UploadPartCopy places server-side (its x-amz-copy-source-range; 0 unknown)."""
    found = _COPY_RANGE.match((headers.get("x-amz-copy-source-range") or "").strip())
    return int(found.group(2)) - int(found.group(1)) + 1 if found else 0


class _Metered:
    """A file wrapper that counts (and paces) the bytes going through it."""

    def __init__(self, raw: BinaryIO, count, bucket: TokenBucket | None, record: bytearray | None = None):
        self.raw, self.count, self.bucket, self.record = raw, count, bucket, record

    def _pace(self, size: int) -> None:
        if self.bucket is not None and size:
            self.bucket.consume(size)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            data = self.raw.read()
            self._pace(len(data))
        else:
            pieces = []
            while size > 0:
                piece = self.raw.read(min(size, PIECE))
                if not piece:
                    break
                self._pace(len(piece))
                pieces.append(piece)
                size -= len(piece)
            data = b"".join(pieces)
        self._seen(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        line = self.raw.readline(size)
        self._pace(len(line))
        self._seen(line)
        return line

    def _seen(self, data: bytes) -> None:
        self.count(len(data))
        if self.record is not None and len(self.record) < (64 << 20):
            self.record += data

    def write(self, data) -> int:
        view = memoryview(data)
        for start in range(0, len(view), PIECE):
            piece = view[start : start + PIECE]
            self._pace(len(piece))
            self.raw.write(piece)
        self.count(len(view))
        return len(view)

    def flush(self) -> None:
        self.raw.flush()

    def __getattr__(self, name: str):
        return getattr(self.raw, name)


class MeterHandler(ProxyHandler):
    meter: Meter

    def _forward(self) -> None:
        path, _, raw_query = self.path.partition("?")
        if path in (STATS_PATH, RESET_PATH):
            return self._control(path)
        bucket, _, key = path.lstrip("/").partition("/")
        key = unquote(key)
        query = parse_qs(raw_query, keep_blank_values=True)
        op = operation(self.command, key, query, self.headers)
        number = query.get("partNumber", [None])[0] if self.command == "PUT" else None
        name = self.meter.lambda_of(self.command, bucket, key, int(number) if number else None)
        self.meter.add(name, op, requests=1, copied=_copy_length(self.headers) if op == "UploadPartCopy" else 0)
        # Request bodies are the client's uploads (the request line and headers were read
        # before this point); response bodies are what it reads (end_headers below starts
        # the count after the header block). Both directions are paced, headers included.
        record = bytearray() if self.command == "PUT" and key.endswith("plan.json") else None
        rfile, wfile = self.rfile, self.wfile
        self.rfile = _Metered(  # type: ignore[assignment]
            rfile, lambda n: self.meter.add(name, op, sent=n), self.meter.bucket(name, "up"), record
        )
        body_out = _BodyCounter(lambda n: self.meter.add(name, op, received=n))
        self.wfile = _Metered(wfile, body_out, self.meter.bucket(name, "down"))  # type: ignore[assignment]
        started = time.monotonic()
        try:
            super()._forward()
        finally:
            self.rfile, self.wfile = rfile, wfile
            body_out.close()
            self.meter.span(name, op, started, time.monotonic())
        if record is not None:
            self.meter.plan.learn(bytes(record))

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _forward  # not the base's

    def end_headers(self) -> None:
        super().end_headers()
        counter = getattr(self.wfile, "count", None)
        if isinstance(counter, _BodyCounter):
            counter.body_started()

    def _control(self, path: str) -> None:
        if path == RESET_PATH:
            self.meter.reset()
            body = b"{}"
        else:
            body = json.dumps(self.meter.snapshot()).encode()
        length = self.headers.get("Content-Length")
        if length:
            self.rfile.read(int(length))
        self.send_response_only(200, "OK")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _BodyCounter:
    """Counts response bytes written after the header block (the body) only."""

    def __init__(self, add) -> None:
        self.add, self.in_body = add, False

    def body_started(self) -> None:
        self.in_body = True

    def __call__(self, size: int) -> None:
        if self.in_body:
            self.add(size)

    def close(self) -> None:
        self.in_body = False


def serve_meter(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="servers.py meter")
    parser.add_argument("upstream_port", type=int)
    parser.add_argument("--cap-mbps", type=float, default=0.0, help="MB/s per Lambda and direction (0: no cap)")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--cache-bucket", default="", help="serve GETs of this (unchanging) bucket from memory")
    parser.add_argument("--cache-bytes", type=int, default=2 << 30)
    args = parser.parse_args(argv)
    meter = Meter(args.cap_mbps * 1e6 or None, args.cache_bucket)
    handler = type(
        "Handler",
        (MeterHandler,),
        {
            "upstream_port": args.upstream_port,
            "latency": args.latency_ms / 1000.0,
            "cache": ObjectCache(args.cache_bytes) if args.cache_bucket else None,
            "cache_bucket": args.cache_bucket,
            "cache_whole": True,
            "meter": meter,
        },
    )
    server = _Server(("127.0.0.1", 0), handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()
