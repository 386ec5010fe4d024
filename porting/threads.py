"""How many CPU threads each framework's kernels use in a porting process: $PORTING_THREADS, else
$OMP_NUM_THREADS, else the cores this process may run on. MindSpore's CPU kernels default to 25 threads
whatever the machine, which on a small machine costs more in switching than it computes; a run that already
parallelises over processes (the test suite's workers) asks for 1."""
from __future__ import annotations

import os


def cpu_threads() -> int:
    for var in ("PORTING_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
