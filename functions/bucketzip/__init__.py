"""bucketzip: archive an S3 bucket (or prefix) into one streamed, resumable ZIP."""

__version__ = "0.1.0"
