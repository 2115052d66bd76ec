"""In-process moto server (S3, DynamoDB, Step Functions...) on 127.0.0.1.

It runs in this process (moto.server.ThreadedMotoServer) rather than as a
subprocess so that tests can monkeypatch moto's backends and see the effect on
requests served over HTTP.  The AWS_* environment is pointed at it, so product
code using plain boto3.client("s3") talks to it without knowing.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

REGION = "us-east-1"

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    # A developer's ~/.aws files (profiles, endpoints, addressing style) must not leak in.
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
# Variables that would override the endpoint or credentials chosen above.
_UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")


@contextlib.contextmanager
def running_moto_server(host: str = "127.0.0.1") -> Iterator[str]:
    """Start a threaded moto server on a free port, set the AWS_* environment to
    use it (AWS_ENDPOINT_URL included), yield its URL; stop it and restore the
    environment on exit."""
    from moto.server import ThreadedMotoServer

    # werkzeug logs every request at INFO to stderr by default: far too noisy.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    saved = dict(os.environ)
    for name in list(os.environ):
        if name in _UNSET or name.startswith("AWS_ENDPOINT_URL_"):  # per-service overrides
            del os.environ[name]
    os.environ.update(FAKE_AWS_ENV)
    # Port 0: the OS picks a free port at bind time (no probe-then-bind race).
    server = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
    server.start()
    try:
        port = server.get_host_and_port()[1]
        url = f"http://{host}:{port}"
        os.environ["AWS_ENDPOINT_URL"] = url
        yield url
    finally:
        server.stop()
        os.environ.clear()
        os.environ.update(saved)
