"""The naive baseline: what a simple script does, one request at a time.

    python -m bench.baseline --endpoint-url URL s3://SRC[/PREFIX] s3://DEST/KEY

Sequential listing -> one GET per object, streamed (never whole in memory) ->
zipstream-ng ZipStream(ZIP_DEFLATED) at its default level (zlib 6) -> the stream cut
into 16 MiB parts, uploaded one after the other -> complete.
"""

from __future__ import annotations

import argparse
import time
import zipfile

from zipstream import ZipStream

from bench.common import PART_SIZE, parse_s3_url, report, s3_client


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.baseline")
    parser.add_argument("source")
    parser.add_argument("dest")
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--part-size", type=int, default=PART_SIZE)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    src_bucket, prefix = parse_s3_url(args.source)
    dest_bucket, dest_key = parse_s3_url(args.dest)
    s3 = s3_client(args.endpoint_url)
    stats = {"bytes_in": 0}

    def body(key: str):
        response = s3.get_object(Bucket=src_bucket, Key=key)
        for block in response["Body"].iter_chunks(1 << 20):
            stats["bytes_in"] += len(block)
            yield block

    zs = ZipStream(compress_type=zipfile.ZIP_DEFLATED)
    objects = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=src_bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            zs.add(body(item["Key"]), item["Key"])  # lazy: the GET runs when the stream reaches it
            objects += 1

    upload_id = s3.create_multipart_upload(Bucket=dest_bucket, Key=dest_key)["UploadId"]
    etags, buffer, bytes_out = [], bytearray(), 0

    def put(data: bytes) -> None:
        number = len(etags) + 1
        etag = s3.upload_part(Bucket=dest_bucket, Key=dest_key, UploadId=upload_id, PartNumber=number, Body=data)[
            "ETag"
        ]
        etags.append({"PartNumber": number, "ETag": etag})

    try:
        for data in zs:
            buffer += data
            bytes_out += len(data)
            if len(buffer) >= args.part_size:
                put(bytes(buffer[: args.part_size]))
                del buffer[: args.part_size]
        put(bytes(buffer))
        s3.complete_multipart_upload(
            Bucket=dest_bucket, Key=dest_key, UploadId=upload_id, MultipartUpload={"Parts": etags}
        )
    except BaseException:
        s3.abort_multipart_upload(Bucket=dest_bucket, Key=dest_key, UploadId=upload_id)
        raise
    report(
        objects=objects,
        bytes_in=stats["bytes_in"],
        bytes_out=bytes_out,
        parts=len(etags),
        seconds=round(time.perf_counter() - started, 3),
    )


if __name__ == "__main__":
    main()
