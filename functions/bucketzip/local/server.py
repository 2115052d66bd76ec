"""An embedded moto server (ThreadedMotoServer on 127.0.0.1) for the demo and the tests.

It runs in this process so that `lambdas` can dispatch Lambda invocations to the
handlers in-process. The AWS_* environment is pointed at it while it runs.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlparse

REGION = "us-east-1"
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
_UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")


@contextlib.contextmanager
def embedded_moto_server(host: str = "127.0.0.1") -> Iterator[str]:
    """Start moto on a free port, point the AWS_* environment at it, yield its URL;
    stop it and restore the environment on exit."""
    from moto.server import ThreadedMotoServer

    _cache_moto_module_list()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    saved = dict(os.environ)
    for name in list(os.environ):
        if name in _UNSET or name.startswith("AWS_ENDPOINT_URL_"):
            del os.environ[name]
    os.environ.update(FAKE_AWS_ENV)
    server = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
    server.start()
    try:
        url = f"http://{host}:{server.get_host_and_port()[1]}"
        os.environ["AWS_ENDPOINT_URL"] = url
        yield url
    finally:
        server.stop()
        os.environ.clear()
        os.environ.update(saved)


def _cache_moto_module_list() -> None:
    """Speed only: moto's dispatcher lists its package directory (a listdir and ~170 isdir
    calls) on every request to match the Host header against its module names; the list
    never changes while the process runs, so it is computed once."""
    from moto import backends

    original = backends.list_of_moto_modules
    if not hasattr(original, "cache_info"):  # not yet patched
        backends.list_of_moto_modules = functools.cache(lambda: tuple(original()))  # patching moto (docstring)


def enable_state_machine_execution(endpoint_url: str) -> None:
    """Make moto execute state machines (config `stepfunctions.execute_state_machine`).

    Its interpreter calls Lambda and Step Functions through boto3 at
    http://localhost:$MOTO_PORT, so MOTO_PORT must name this server's port."""
    os.environ["MOTO_PORT"] = str(urlparse(endpoint_url).port)
    body = json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode()
    request = urllib.request.Request(
        f"{endpoint_url}/moto-api/config", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
