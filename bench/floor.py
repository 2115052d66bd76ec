"""The copy floor: every source byte GET once and PUT once as multipart parts, no zip.

    python -m bench.floor --endpoint-url URL --concurrency N s3://SRC[/PREFIX] s3://DEST/KEY

What any bucket-to-one-object tool must at least do, with the same concurrency as
bucketzip: the listing feeds a pool of `concurrency` ranged GETs (chunk-size pieces,
small objects whole) under a byte budget of concurrency x chunk size; the bytes are
concatenated in listing order, cut into part-size parts and uploaded by a second pool
of `concurrency`. No compression, no CRC, no headers, no state, no manifest.
"""

from __future__ import annotations

import argparse
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from bench.common import CHUNK_SIZE, PART_SIZE, parse_s3_url, report, s3_client


class ByteBudget:
    def __init__(self, limit: int):
        self.limit, self.used, self.cond = limit, 0, threading.Condition()

    def acquire(self, n: int) -> None:
        n = min(n, self.limit)
        with self.cond:
            while self.used + n > self.limit:
                self.cond.wait()
            self.used += n

    def release(self, n: int) -> None:
        with self.cond:
            self.used -= min(n, self.limit)
            self.cond.notify_all()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.floor")
    parser.add_argument("source")
    parser.add_argument("dest")
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--part-size", type=int, default=PART_SIZE)
    parser.add_argument("--chunk-size", type=int, default=CHUNK_SIZE)
    parser.add_argument(
        "--out-ratio",
        type=float,
        default=1.0,
        help="upload only this fraction of each chunk read: a floor that uploads as many bytes "
        "as a compressing contender did (its out/in), so the two compare fairly",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    src_bucket, prefix = parse_s3_url(args.source)
    dest_bucket, dest_key = parse_s3_url(args.dest)
    s3 = s3_client(args.endpoint_url, args.concurrency)
    chunk_size, part_size, concurrency = args.chunk_size, args.part_size, args.concurrency

    budget = ByteBudget(concurrency * chunk_size)  # fetched ahead of the writer, like bucketzip
    ordered: queue.Queue = queue.Queue()
    gets = ThreadPoolExecutor(concurrency, thread_name_prefix="get")
    objects = 0

    def fetch(key: str, start: int, length: int, whole: bool) -> bytes:
        kwargs = {"Bucket": src_bucket, "Key": key}
        if not whole:
            kwargs["Range"] = f"bytes={start}-{start + length - 1}"
        return s3.get_object(**kwargs)["Body"].read()

    def plan() -> None:
        nonlocal objects
        try:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=src_bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    objects += 1
                    size = item["Size"]
                    for start in range(0, size, chunk_size) or [0]:
                        length = min(chunk_size, size - start)
                        budget.acquire(length)
                        ordered.put((gets.submit(fetch, item["Key"], start, length, length == size), length))
        except BaseException as exc:  # noqa: BLE001 - re-raised by the consumer
            failed: Future = Future()
            failed.set_exception(exc)
            ordered.put((failed, 0))
        finally:
            ordered.put(None)

    upload_id = s3.create_multipart_upload(Bucket=dest_bucket, Key=dest_key)["UploadId"]
    puts = ThreadPoolExecutor(concurrency, thread_name_prefix="put")
    slots = threading.Semaphore(concurrency)
    parts: list[tuple[int, Future]] = []

    def put(number: int, body: bytes) -> str:
        return s3.upload_part(Bucket=dest_bucket, Key=dest_key, UploadId=upload_id, PartNumber=number, Body=body)[
            "ETag"
        ]

    def cut(body: bytes) -> None:
        slots.acquire()
        future = puts.submit(put, len(parts) + 1, body)
        future.add_done_callback(lambda _: slots.release())
        parts.append((len(parts) + 1, future))

    bytes_in = bytes_out = 0
    buffer = bytearray()
    threading.Thread(target=plan, daemon=True).start()
    try:
        while (item := ordered.get()) is not None:
            data = item[0].result()
            budget.release(item[1])
            bytes_in += len(data)
            kept = data if args.out_ratio >= 1 else data[: round(len(data) * args.out_ratio)]
            bytes_out += len(kept)
            buffer += kept
            while len(buffer) >= part_size:
                cut(bytes(buffer[:part_size]))
                del buffer[:part_size]
        if buffer or not parts:
            cut(bytes(buffer))
        etags = [{"PartNumber": number, "ETag": future.result()} for number, future in parts]
        s3.complete_multipart_upload(
            Bucket=dest_bucket, Key=dest_key, UploadId=upload_id, MultipartUpload={"Parts": etags}
        )
    except BaseException:
        s3.abort_multipart_upload(Bucket=dest_bucket, Key=dest_key, UploadId=upload_id)
        raise
    finally:
        gets.shutdown(wait=False, cancel_futures=True)
        puts.shutdown(wait=True)
    report(
        objects=objects,
        bytes_in=bytes_in,
        bytes_out=bytes_out,
        parts=len(parts),
        seconds=round(time.perf_counter() - started, 3),
    )


if __name__ == "__main__":
    main()
