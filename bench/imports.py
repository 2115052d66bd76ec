"""Reference for peak RSS figures: a process that only imports what the contenders import."""

import boto3  # noqa: F401  (imported for its memory, not used)
import zipstream  # noqa: F401

import bucketzip.cli  # noqa: F401
