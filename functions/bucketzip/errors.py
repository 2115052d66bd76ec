"""Errors the engine raises. The class name is what Step Functions sees as the
error name (Lambda reports `errorType`), so the ASL's Retry/Catch match on them."""


class BucketzipError(Exception):
    """Base class: a problem the user can act on; the message names it."""


class InputError(BucketzipError):
    """The request itself is wrong (bad field, bad glob, bad size)."""


class SourceNotFound(BucketzipError):
    """The source bucket does not exist."""


class DestinationNotFound(BucketzipError):
    """The destination bucket does not exist."""


class DestinationExists(BucketzipError):
    """The destination key exists and overwrite was not asked."""


class AccessDenied(BucketzipError):
    """S3 or DynamoDB refused an operation."""


class ObjectChanged(BucketzipError):
    """An object changed or vanished after listing, and --strict was asked."""


class StaleState(BucketzipError):
    """Another step committed first (fencing): this step must stop, not retry."""


class RunExists(StaleState):
    """A run with this id already has state."""


class RunNotFound(BucketzipError):
    """No state for this run id (finished, aborted or never started)."""


class IntegrityError(BucketzipError):
    """The uploaded parts do not match what the state recorded."""


class RetryableError(BucketzipError):
    """Transient: S3 SlowDown/5xx, throttling. Safe to retry the step."""
