"""The emulator and the latency proxy, each in a process of its own.

    python bench/servers.py moto                      # moto server on a free port
    python bench/servers.py proxy UPSTREAM_PORT MS    # latency proxy in front of it

Each prints `PORT <n>` on its first stdout line once it accepts connections, then
serves until killed. Running them apart from the measured tools keeps the emulator's
CPU and memory out of the tools' figures (peak RSS and CPU are per process).

The proxy is a small threaded HTTP/1.1 reverse proxy: it sleeps MS milliseconds
after reading each request's headers (S3's first-byte latency, which is what makes
concurrency pay off against real S3), then forwards the request to moto and streams
the response back in 1 MiB blocks. Request bodies (at most one part, 16 MiB) are read
whole before forwarding, so a stale keep-alive connection to moto can be retried.
"""

from __future__ import annotations

import http.client
import logging
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                        "trailers", "transfer-encoding", "upgrade", "expect", "proxy-connection"))
BLOCK = 1 << 20


def serve_moto() -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(f"PORT {server.get_host_and_port()[1]}", flush=True)
    threading.Event().wait()


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


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream_port = 0
    latency = 0.0

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
        for attempt in (0, 1):
            conn = self._upstream(fresh=attempt > 0)
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in headers:
                    conn.putheader(name, value)
                conn.endheaders(body)
                response = conn.getresponse()
                break
            except (http.client.RemoteDisconnected, ConnectionError, http.client.CannotSendRequest,
                    http.client.BadStatusLine):
                if attempt:
                    raise
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

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _forward


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def serve_proxy(upstream_port: int, latency_ms: float) -> None:
    handler = type("Handler", (ProxyHandler,), {"upstream_port": upstream_port, "latency": latency_ms / 1000.0})
    server = _Server(("127.0.0.1", 0), handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    if sys.argv[1:2] == ["moto"]:
        serve_moto()
    elif sys.argv[1:2] == ["proxy"] and len(sys.argv) == 4:
        serve_proxy(int(sys.argv[2]), float(sys.argv[3]))
    else:
        sys.exit("usage: servers.py moto | servers.py proxy UPSTREAM_PORT LATENCY_MS")
