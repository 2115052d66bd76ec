"""Run a command and report its wall time and the peak RSS of its whole process tree.

`/usr/bin/time -v` reports only the largest single process; the test suite runs readers,
Java and (with -n 2) xdist workers as children, so this samples the sum over the tree.

    python3 scripts/peak_rss.py [--interval 0.2] -- python3 -m pytest -q

Prints `wall N s, CPU C s, peak tree RSS M MiB` to stderr at the end and exits with the command's
status. Sampling can miss a peak shorter than the interval; the figure is a lower bound.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time

import psutil


def tree_rss(root: psutil.Process) -> int:
    total = 0
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:  # ended between listing and reading
            pass
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval", type=float, default=0.2, help="sampling period in seconds (default 0.2)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")

    started = time.monotonic()
    child = subprocess.Popen(command)
    root = psutil.Process(child.pid)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_rss(root))
            stop.wait(args.interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        _, wait_status, usage = os.wait4(child.pid, 0)
    except KeyboardInterrupt:
        child.terminate()
        _, wait_status, usage = os.wait4(child.pid, 0)
    stop.set()
    sampler.join()
    # CPU time of the command and every descendant it waited for: the load-independent figure.
    cpu = usage.ru_utime + usage.ru_stime
    print(
        f"wall {time.monotonic() - started:.0f} s, CPU {cpu:.0f} s (user+sys of the tree), "
        f"peak tree RSS {peak / 2**20:.0f} MiB",
        file=sys.stderr,
    )
    child.returncode = os.waitstatus_to_exitcode(wait_status)
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
