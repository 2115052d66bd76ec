"""The private/undocumented dependency APIs bucketzip wraps (bucketzip.private_apis):
each still behaves as bucketzip assumes. A failure here after an upgrade names the one
place to fix."""

from __future__ import annotations

import io
import lzma
import struct
import zipfile

from zipstream.ng import ZipStreamInfo

from bucketzip import private_apis


def test_the_end_record_is_the_one_zipfile_writes():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w"):
        pass
    assert private_apis.end_of_central_directory(0, 0, 0) == buffer.getvalue()


def test_zip64_end_records_have_the_spec_layout():
    record = private_apis.zip64_end_of_central_directory(70_000, 5_000_000, 6 << 30)
    assert len(record) == 56 and record[:4] == b"PK\x06\x06"
    size, made_by, needed, _, _, on_disk, total, cd_size, cd_offset = struct.unpack_from("<QHHLLQQQQ", record, 4)
    assert (size, needed, on_disk, total, cd_size, cd_offset) == (44, 45, 70_000, 70_000, 5_000_000, 6 << 30)
    locator = private_apis.zip64_end_locator(7 << 30)
    assert len(locator) == 20 and locator[:4] == b"PK\x06\x07"
    assert struct.unpack_from("<LQL", locator, 4) == (0, 7 << 30, 1)


def test_headers_from_zipstream_info_make_an_archive_zipfile_reads():
    info = ZipStreamInfo("dir/a.txt", date_time=(2024, 5, 6, 7, 8, 10))
    data = b"hello"
    info.compress_type, info.header_offset = zipfile.ZIP_STORED, 0
    info.CRC, info.compress_size, info.file_size = zipfile.crc32(data), len(data), len(data)
    local = private_apis.local_file_header(info, False)
    assert local[:4] == b"PK\x03\x04" and len(local) == 30 + len("dir/a.txt")
    central = private_apis.central_directory_record(info)
    assert central[:4] == b"PK\x01\x02"
    body = local + data
    archive = body + central + private_apis.end_of_central_directory(1, len(central), len(body))
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        assert zf.testzip() is None and zf.read("dir/a.txt") == data
        assert zf.getinfo("dir/a.txt").date_time == (2024, 5, 6, 7, 8, 10)


def test_lzma1_properties_decode_and_drive_a_raw_decompressor():
    filter_spec = {"id": lzma.FILTER_LZMA1, "dict_size": 1 << 16, "lc": 3, "lp": 0, "pb": 2}
    raw = lzma.compress(b"zip entry data " * 100, format=lzma.FORMAT_RAW, filters=[filter_spec])
    properties = bytes([(2 * 5 + 0) * 9 + 3]) + (1 << 16).to_bytes(4, "little")  # the 5 bytes zip stores
    decoded = private_apis.lzma1_filter(properties)
    assert decoded["id"] == lzma.FILTER_LZMA1 and decoded["dict_size"] == 1 << 16
    assert (decoded["lc"], decoded["lp"], decoded["pb"]) == (3, 0, 2)
    decompressor = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[decoded])
    assert decompressor.decompress(raw) == b"zip entry data " * 100
