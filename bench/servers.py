"""The emulator and the latency proxy, each in a process of its own.

    python bench/servers.py moto [--copy-fidelity]    # moto server on a free port
    python bench/servers.py proxy UPSTREAM_PORT MS [--cache-bucket B [--cache-whole]]
    python bench/servers.py meter UPSTREAM_PORT [--cap-mbps R] [--cache-bucket B]   (bench/meter.py)

Each prints `PORT <n>` on its first stdout line once it accepts connections, then
serves until killed. Running them apart from the measured tools keeps the emulator's
CPU and memory out of the tools' figures (peak RSS and CPU are per process).

The proxy is a small threaded HTTP/1.1 reverse proxy: it sleeps MS milliseconds
after reading each request's headers (S3's first-byte latency, which is what makes
concurrency pay off against real S3), then forwards the request to moto and streams
the response back in 1 MiB blocks. Request bodies (at most one part, 16 MiB) are read
whole before forwarding, so a stale keep-alive connection to moto can be retried.

With --cache-bucket, ranged GETs of that bucket's objects are served by the proxy
itself, from a cache of whole objects fetched once from moto: moto answers every
ranged GET by reading the WHOLE object and slicing it (moto/s3/responses.py,
_handle_range_header), so reading a 256 MiB object in 8 MiB ranges would cost moto
32 x 256 MiB, and a benchmark of ranged readers (the floor and bucketzip) would
measure that. S3 serves a range in time proportional to the range;
so does the cache. The status, headers and conditions (If-Match) are S3's: 206 with
Content-Range, 412 when If-Match differs from the ETag, checksums dropped as S3 does.

With --cache-whole, whole-object GETs of that bucket are served from the cache too.
moto spends ~2.5 ms of CPU per GET, serialized by its GIL, which on a small machine
caps any concurrent reader at a few hundred objects/s whatever the latency: S3 has
no such ceiling. The source bucket does not change during a benchmark, so serving
its reads from memory is exact; listings and every write still go to moto.
"""

from __future__ import annotations

import argparse
import http.client
import logging
import os
import re
import socket
import sys
import threading
import time
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = frozenset(
    (
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "expect",
        "proxy-connection",
    )
)
BLOCK = 1 << 20


def serve_moto(argv: list[str]) -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    if "--copy-fidelity" in argv:
        # What S3 documents for UploadPartCopy and moto 5.2.5 lacks (If-Match refusal, the
        # part's CRC32 in CopyPartResult), as the tests patch it in (tests/support).
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
        from support.copy_fidelity import s3_copy_fidelity

        fidelity = s3_copy_fidelity()  # held until the process ends (a dropped one would undo it)
        fidelity.__enter__()
    # Objects up to 2 GiB stay in memory (moto's default spills those over ~5 MiB to temp
    # files): the benchmark measures the tools, not this machine's disk.
    os.environ.setdefault("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", str(2 << 30))
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(f"PORT {server.get_host_and_port()[1]}", flush=True)
    threading.Event().wait()  # `fidelity` stays alive as long as this frame


def _read_chunked(rfile) -> bytes:
    out = bytearray()
    while True:
        size = int(rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return bytes(out)
        out += rfile.read(size)
        rfile.readline()  # CRLF after the chunk


_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


class ObjectCache:
    """Whole objects by request path (query included), LRU, bounded in bytes; one
    load per path however many threads ask for it at once."""

    def __init__(self, limit: int):
        self.limit, self.size = limit, 0
        self.lock = threading.Lock()
        self.entries: OrderedDict[str, tuple] = OrderedDict()
        self.loading: dict[str, threading.Event] = {}

    def get(self, path: str, load):
        with self.lock:
            if path in self.entries:
                self.entries.move_to_end(path)
                return self.entries[path]
            event = self.loading.get(path)
            owner = event is None
            if owner:
                event = self.loading[path] = threading.Event()
        if not owner:
            event.wait()
            with self.lock:
                return self.entries.get(path)
        value = None
        try:
            value = load()
        finally:
            with self.lock:
                if value is not None and len(value[1]) <= self.limit:
                    self.entries[path] = value
                    self.size += len(value[1])
                    while self.size > self.limit:
                        _, (_, old) = self.entries.popitem(last=False)
                        self.size -= len(old)
                del self.loading[path]
                event.set()
        return value


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream_port = 0
    latency = 0.0
    cache: ObjectCache | None = None
    cache_bucket = ""
    cache_whole = False

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes: without NODELAY, Nagle plus the
        # client's delayed ACK would add ~40 ms to small responses.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def _upstream(self, fresh: bool = False) -> http.client.HTTPConnection:
        conn = getattr(self, "_conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=300)
            self._conn = conn
        return conn

    def _forward(self) -> None:
        if self.latency:
            time.sleep(self.latency)
        if self.command == "GET" and self.cache is not None and self._serve_cached():
            return
        length = self.headers.get("Content-Length")
        if length is not None:
            body = self.rfile.read(int(length)) if int(length) else b""
        elif "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = _read_chunked(self.rfile)
        else:
            body = None
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP]
        if body is not None and length is None:
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            headers.append(("Content-Length", str(len(body))))
        response = self._send_upstream(self.command, headers, body)
        self.send_response_only(response.status, response.reason)
        out_headers = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
        has_length = any(k.lower() == "content-length" for k, _ in out_headers)
        no_body = self.command == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
        for name, value in out_headers:
            self.send_header(name, value)
        chunked = not has_length and not no_body
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if not no_body:
            while True:
                block = response.read(BLOCK)
                if not block:
                    break
                if chunked:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                else:
                    self.wfile.write(block)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        response.close()
        if response.will_close:
            self._upstream(fresh=True)

    def _send_upstream(self, method: str, headers, body):
        """Send this request's path upstream; a kept-alive connection moto closed meanwhile
        is retried once on a fresh one."""
        for attempt in (0, 1):
            conn = self._upstream(fresh=attempt > 0)
            try:
                conn.putrequest(method, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in headers:
                    conn.putheader(name, value)
                conn.endheaders(body)
                return conn.getresponse()
            except (
                http.client.RemoteDisconnected,
                ConnectionError,
                http.client.CannotSendRequest,
                http.client.BadStatusLine,
            ):
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _load_whole(self):
        """GET the whole object from moto: (headers, body), or None when not a plain 200."""
        headers = [
            (k, v)
            for k, v in self.headers.items()
            if k.lower() not in HOP_BY_HOP and k.lower() not in ("range", "if-match", "content-length")
        ]
        response = self._send_upstream("GET", headers, None)
        body = response.read()
        if response.will_close:
            self._upstream(fresh=True)
        if response.status != 200:
            return None
        kept = [
            (k, v)
            for k, v in response.getheaders()
            if k.lower() not in HOP_BY_HOP
            and k.lower() not in ("content-length", "content-range", "date")
            and not k.lower().startswith("x-amz-checksum-")
        ]
        return kept, body

    def _serve_cached(self) -> bool:
        """Answer a GET of a source object from the cache; False: forward it as is.
        Ranged GETs (`Range: bytes=B-E`) always; whole-object GETs when `cache_whole`."""
        path, _, query = self.path.partition("?")
        bucket, _, key = path.lstrip("/").partition("/")
        if not key or bucket != self.cache_bucket or (query and not query.startswith("versionId=")):
            return False
        range_header = self.headers.get("Range")
        match = _RANGE.match(range_header.strip()) if range_header is not None else None
        if (range_header is not None and match is None) or (match is None and not self.cache_whole):
            return False
        cached = self.cache.get(self.path, self._load_whole)
        if cached is None:
            return False
        headers, body = cached
        etag = next((v for k, v in headers if k.lower() == "etag"), None)
        if_match = self.headers.get("If-Match")
        if if_match is not None and if_match.strip() not in ("*", etag):
            self.send_response_only(412, "Precondition Failed")
            error = (
                b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>PreconditionFailed</Code>'
                b"<Message>At least one of the pre-conditions you specified did not hold</Message></Error>"
            )
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(error)))
            self.end_headers()
            self.wfile.write(error)
            return True
        if match is not None:
            begin, end = int(match.group(1)), match.group(2)
            last = len(body) - 1
            if begin > last:
                return False  # moto answers 416 InvalidRange
            end = last if end == "" else min(int(end), last)
            self.send_response_only(206, "Partial Content")
        else:
            begin, end = 0, len(body) - 1
            self.send_response_only(200, "OK")
        for name, value in headers:
            self.send_header(name, value)
        if match is not None:
            self.send_header("Content-Range", f"bytes {begin}-{end}/{len(body)}")
        self.send_header("Content-Length", str(end - begin + 1))
        self.end_headers()
        view = memoryview(body)
        for start in range(begin, end + 1, BLOCK):
            self.wfile.write(view[start : min(start + BLOCK, end + 1)])
        return True

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _forward


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def serve_proxy(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="servers.py proxy")
    parser.add_argument("upstream_port", type=int)
    parser.add_argument("latency_ms", type=float)
    parser.add_argument(
        "--cache-bucket", default="", help="serve GETs of this (unchanging) bucket's objects from memory"
    )
    parser.add_argument("--cache-bytes", type=int, default=2 << 30)
    parser.add_argument("--cache-whole", action="store_true", help="whole-object GETs too, not only ranges")
    args = parser.parse_args(argv)
    handler = type(
        "Handler",
        (ProxyHandler,),
        {
            "upstream_port": args.upstream_port,
            "latency": args.latency_ms / 1000.0,
            "cache": ObjectCache(args.cache_bytes) if args.cache_bucket else None,
            "cache_bucket": args.cache_bucket,
            "cache_whole": args.cache_whole,
        },
    )
    server = _Server(("127.0.0.1", 0), handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    if sys.argv[1:2] == ["moto"]:
        serve_moto(sys.argv[2:])
    elif sys.argv[1:2] == ["proxy"]:
        serve_proxy(sys.argv[2:])
    elif sys.argv[1:2] == ["meter"]:
        from bench.meter import serve_meter  # the counting, per-Lambda capping proxy

        serve_meter(sys.argv[2:])
    else:
        sys.exit("usage: servers.py moto | servers.py proxy UPSTREAM_PORT LATENCY_MS [options] | servers.py meter ...")
