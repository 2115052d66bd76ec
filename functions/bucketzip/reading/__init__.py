"""Reading archives back, straight from S3 with ranged GETs: ls, extract, restore, verify.

    from bucketzip.reading import Archive, list_archive, extract, plan_restore, restore, verify_s3

    archive = Archive.open_s3(s3, "backups", "2024/photos.zip")
    for item in list_archive(archive, ["*.jpg"]): print(item.entry.name, item.key)
    extract(archive, "out/", ["docs/"])
    restore(s3, archive, plan_restore(archive, "restored/"), "dest-bucket")
    report = verify_s3(s3, "backups", "2024/photos.zip"); report.ok

Everything here raises only BucketzipError subclasses (bucketzip.errors) on bad input.
"""

from ..errors import (
    ArchiveChanged,
    ArchiveNotFound,
    CorruptArchive,
    CorruptManifest,
    DestinationExists,
    EntryCorrupt,
    ReadFailed,
    UnsafePath,
    UnsupportedArchive,
)
from .archive import Archive, matches
from .directory import ArchiveInfo, Entry, read_directory, read_end
from .extract import ExtractResult, extract, safe_parts
from .ls import Listed, list_archive
from .manifest import Manifest, ManifestEntry, load_manifest, manifest_key, parse_manifest
from .rangereader import BytesRangeReader, FileRangeReader, RangeReader, S3RangeReader
from .restore import RestoreItem, RestoreResult, plan_restore, restore
from .verify import VerifyReport, compare_source, verify, verify_s3

__all__ = [
    "Archive",
    "ArchiveChanged",
    "ArchiveInfo",
    "ArchiveNotFound",
    "BytesRangeReader",
    "CorruptArchive",
    "CorruptManifest",
    "DestinationExists",
    "Entry",
    "EntryCorrupt",
    "ExtractResult",
    "FileRangeReader",
    "Listed",
    "Manifest",
    "ManifestEntry",
    "RangeReader",
    "ReadFailed",
    "RestoreItem",
    "RestoreResult",
    "S3RangeReader",
    "UnsafePath",
    "UnsupportedArchive",
    "VerifyReport",
    "compare_source",
    "extract",
    "list_archive",
    "load_manifest",
    "manifest_key",
    "matches",
    "parse_manifest",
    "plan_restore",
    "read_directory",
    "read_end",
    "restore",
    "safe_parts",
    "verify",
    "verify_s3",
]
