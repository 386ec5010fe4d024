"""The resident memory of a whole process tree (a command, its source worker, anything they start), polled from
/proc: the sum of VmRSS over the tree, its peak, and a cap that kills the tree when the sum passes it.

A sum of RSS counts pages two processes share twice, so it over-states the tree's use, never under-states it.
Polling misses a peak shorter than the interval; every allocation parity makes lives far longer than 20 ms.

    python parity_tests/treemem.py [--cap-gb G] -- COMMAND...   # prints 'peak RSS of the tree: X GB' on stderr
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:80]
    except OSError:
        return ""


def tree_rss(root: int) -> tuple[int, list[int]]:
    """(sum of VmRSS over `root` and every descendant, their pids)."""
    tree, pids, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(tree.get(pid, []))
    return sum(_rss(p) for p in pids), pids


@dataclass
class Measured:
    code: int
    stdout: str
    stderr: str
    peak: int  # bytes
    capped: bool  # killed for passing the cap
    at_peak: dict  # pid -> (RSS in bytes, command line) when the sum peaked


def run_measured(cmd: list[str], cap: int | None = None, interval: float = 0.02, **popen) -> Measured:
    """Run `cmd`, polling its tree's RSS; past `cap` bytes the whole tree is killed (SIGKILL), as an out-of-memory
    killer with that limit would."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, start_new_session=True, **popen)
        peak, capped, at_peak = 0, False, {}
        while proc.poll() is None:
            used, pids = tree_rss(proc.pid)
            if used > peak:
                peak, at_peak = used, {p: (_rss(p), _cmdline(p)) for p in pids}
            if cap is not None and used > cap:
                capped = True
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                break
            time.sleep(interval)
        code = proc.wait()
        out.seek(0)
        err.seek(0)
        return Measured(code, out.read(), err.read(), peak, capped, at_peak)


if __name__ == "__main__":
    args = sys.argv[1:]
    cap = None
    if args[:1] == ["--cap-gb"]:
        cap, args = int(float(args[1]) * 2**30), args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    t0 = time.time()
    m = run_measured(args, cap)
    sys.stdout.write(m.stdout)
    sys.stderr.write(m.stderr)
    for pid, (rss, cmd) in m.at_peak.items():
        print(f"  {rss / 2**30:.2f} GiB  {cmd}", file=sys.stderr)
    print(f"peak RSS of the tree: {m.peak / 2**30:.2f} GiB{' (killed at the cap)' if m.capped else ''}; exit "
          f"{m.code}; {time.time() - t0:.0f} s", file=sys.stderr)
    sys.exit(m.code)
