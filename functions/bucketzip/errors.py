"""Every error bucketzip raises, in one hierarchy under BucketzipError.

The class name is what Step Functions sees as the error name (Lambda reports
`errorType`), so the ASL's Retry/Catch (statemachine/archive.asl.json) and the README
match on these names: rename one only together with both. The CLI prints any
BucketzipError as one line and exits 1. botocore errors become these in one place,
bucketzip.s3errors."""


class BucketzipError(Exception):
    """Base class: a problem the user can act on; the message names it."""


# -- archiving (the engine, the workflow) ------------------------------------------


class InputError(BucketzipError):
    """The request itself is wrong (bad field, bad glob, bad size)."""


class SourceNotFound(BucketzipError):
    """The source bucket does not exist."""


class DestinationNotFound(BucketzipError):
    """The destination bucket does not exist."""


class DestinationExists(BucketzipError):
    """What would be written exists and overwrite was not asked: the archive key, or a
    file or object that extract/restore would write."""


class AccessDenied(BucketzipError):
    """S3 or DynamoDB refused an operation."""


class ObjectChanged(BucketzipError):
    """An object changed or vanished after listing, and --strict was asked."""


class ArchiveTooLarge(BucketzipError):
    """The archive would need more than S3's 10,000 parts under the run's part policy;
    the message names the largest archive the settings allow (a larger part_size raises it)."""


class StaleState(BucketzipError):
    """Another step committed first (fencing): this step must stop, not retry."""


class RunBusy(StaleState):
    """Another process holds the run (the CLI's local store): this one must not touch it."""


class RunExists(StaleState):
    """A run with this id already has state."""


class RunNotFound(BucketzipError):
    """No state for this run id (finished, aborted or never started)."""


class IntegrityError(BucketzipError):
    """The uploaded parts do not match what the state recorded."""


class RetryableError(BucketzipError):
    """Transient: a dropped connection or timeout, S3 SlowDown/5xx, DynamoDB throttling
    or a transaction conflict (see s3errors.is_transient). Safe to retry the step: the
    run resumes from its last commit."""


class SegmentFailed(BucketzipError):
    """A segment of a parallel run failed permanently: the run cannot be completed as asked
    (the parent run is aborted, every segment with it)."""


# -- reading archives back (ls / extract / restore / verify) ----------------------
# Hostile or broken archives always surface as one of these, never as a traceback.


class ArchiveNotFound(BucketzipError):
    """The archive object (or its bucket) does not exist."""


class ArchiveChanged(BucketzipError):
    """The archive object was replaced while it was being read (its ETag changed)."""


class ReadFailed(BucketzipError):
    """S3 refused or failed a read, after retries."""


class CorruptArchive(BucketzipError):
    """The bytes are not a sound zip archive: bad records, offsets past the end, ..."""


class EntryCorrupt(CorruptArchive):
    """One entry's data is bad: CRC or size mismatch, broken deflate stream, bomb."""


class UnsupportedArchive(BucketzipError):
    """A valid zip that this reader does not handle: encrypted, spanned, unknown method."""


class UnsafePath(BucketzipError):
    """An entry name would write outside the destination (absolute, '..', links)."""


class CorruptManifest(BucketzipError):
    """The manifest beside the archive cannot be parsed."""
