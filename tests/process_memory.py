"""Peak memory of the current process, for the memory tests and benchmarks."""

from __future__ import annotations


def peak_rss_bytes() -> int:
    """This process's high-water resident set (VmHWM; ru_maxrss would include the parent's)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmHWM is not reported on this system")
