"""Run a Python module as __main__ and, at exit, write this process's peak RSS.

    python -m bench.peak OUT_FILE MODULE [ARGS...]

The peak is VmHWM from /proc/self/status: the high-water mark of this process's own
address space since exec. (ru_maxrss from wait4/getrusage would not do: Linux carries
the parent's high-water mark into a vfork()ed child across exec, so every child would
report at least the benchmark runner's own peak.)
"""

from __future__ import annotations

import atexit
import runpy
import sys


def _vm_hwm_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main() -> None:
    out_file, module = sys.argv[1], sys.argv[2]

    def write_peak() -> None:
        with open(out_file, "w") as out:
            out.write(f"{_vm_hwm_kib()}\n")

    atexit.register(write_peak)
    sys.argv = [module, *sys.argv[3:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
