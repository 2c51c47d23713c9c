"""Peak resident memory of this process, for the benchmark scripts."""

from __future__ import annotations

import resource


def peak_rss_mb() -> float:
    """VmHWM of this address space, in MB.

    Not ``getrusage().ru_maxrss``: Linux carries that high-water mark across
    fork and exec, so a child started by a big parent would report the
    parent's peak instead of its own.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
