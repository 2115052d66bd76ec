"""The AWS service limits bucketzip is built around, each named once, with the page of
the AWS documentation that states it. Change one only when AWS does; everything that
depends on a limit imports it from here."""

from __future__ import annotations

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

# -- Amazon S3 ----------------------------------------------------------------------
# S3 User Guide, "Amazon S3 multipart upload limits": every part but the last is
# 5 MiB to 5 GiB, and an upload has at most 10,000 parts (numbered 1 to 10,000).
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * GiB
MAX_PARTS = 10_000
# S3 User Guide, "Naming Amazon S3 objects": a key is at most 1,024 bytes of UTF-8.
MAX_KEY_BYTES = 1024
# S3 API Reference, "ListObjectsV2": MaxKeys, at most 1,000 keys per page.
MAX_LIST_KEYS = 1000
# S3 API Reference, "DeleteObjects": at most 1,000 keys per request.
MAX_DELETE_KEYS = 1000

# -- Amazon DynamoDB ----------------------------------------------------------------
# DynamoDB Developer Guide, "Quotas in Amazon DynamoDB" (Item size): 400 KB per item,
# attribute names and values included.
MAX_ITEM_BYTES = 400 * KiB
# DynamoDB API Reference, "BatchWriteItem": at most 25 put or delete requests per call.
MAX_BATCH_WRITE_ITEMS = 25

# -- AWS Step Functions -------------------------------------------------------------
# Step Functions Developer Guide, "Step Functions service quotas": the input or output
# of a task, state or execution is at most 256 KiB (UTF-8); more fails the execution
# with States.DataLimitExceeded, which no Catch can handle.
MAX_STATE_PAYLOAD_BYTES = 256 * KiB
