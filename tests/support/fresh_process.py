"""Run one function of a test module in a fresh Python process, for measurements that a
pytest worker's other threads would disturb: tracemalloc counts every thread of the
process, and a worker may still run threads of an earlier test (its in-process emulator,
the Step Functions interpreter's executions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

_CALL = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("measured", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps(getattr(module, sys.argv[2])(*json.loads(sys.argv[3]))))
"""


def call_in_fresh_process(path: str, function: str, *args: Any, env: dict[str, str] | None = None) -> Any:
    """`function(*args)` of the module at `path`, in a new process with this one's import
    path (test helpers are imported as pytest imports them); its JSON result."""
    done = subprocess.run(
        [sys.executable, "-c", _CALL, path, function, json.dumps(args)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])
