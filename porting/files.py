"""Outputs that appear whole or not at all, and temporaries that never outlive the run.

- Every file porting writes goes through `atomic_output`: the writer (ours, MindSpore's, ONNX's, a worker's)
  writes into a private folder beside the destination, and only a complete file is moved into place, with the
  mode an ordinary file gets under the user's umask (0644 under umask 022). An existing file at the destination
  is replaced only by a complete new one; a failed run leaves it untouched.
- Everything else a run needs (worker jobs, intermediate exports, the frameworks' own temporaries) lives under
  one private folder in TMPDIR (`start_run` points TMPDIR there), removed when the run ends.
- Both are registered with a guardian: a small process forked at start-up, before any framework is imported.
  If porting dies without cleaning up (kill -9), the guardian sees its pipe close, kills the registered worker
  processes and removes the registered folders. Workers also ask the kernel to kill them with their parent.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

from porting.errors import Interrupted, PortingError


class _Guardian:
    """The parent's side: one pipe to the guardian, lines '+path', '-path', '+#pid', '-#pid'."""

    def __init__(self) -> None:
        self.fd: int | None = None
        self.pid: int | None = None

    def start(self) -> None:
        if self.fd is not None:
            return
        read_fd, write_fd = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the guardian
            try:
                os.close(write_fd)
                _guard(read_fd)
            finally:
                os._exit(0)
        os.close(read_fd)
        self.fd, self.pid = write_fd, pid

    def tell(self, line: str) -> None:
        if self.fd is not None:
            try:
                os.write(self.fd, (line + "\n").encode())  # one write per line: atomic below PIPE_BUF
            except OSError:
                pass

    def stop(self) -> None:
        if self.fd is None:
            return
        os.close(self.fd)
        self.fd = None
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def _guard(read_fd: int) -> None:
    """Wait for the parent's pipe to close, then kill what it left running and remove what it left behind."""
    os.setsid()  # terminal signals (Ctrl-C to the foreground group) do not reach the guardian
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # never hold the caller's stdout/stderr pipes open
        os.dup2(devnull, fd)
    paths: dict[str, None] = {}
    pids: set[int] = set()
    buffer = b""
    while True:
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw.decode(errors="surrogateescape")
            op, item = line[0], line[1:]
            if item.startswith("#"):
                (pids.add if op == "+" else pids.discard)(int(item[1:]))
            elif op == "+":
                paths[item] = None
            else:
                paths.pop(item, None)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pids and time.monotonic() < deadline:  # a dying worker may still be writing into its scratch
        pids = {p for p in pids if os.path.exists(f"/proc/{p}") and not _is_zombie(p)}
        time.sleep(0.02)
    for path in reversed(list(paths)):
        _remove(Path(path))


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()


_GUARDIAN = _Guardian()
_RUN: dict = {"scratch": None, "umask": None, "critical": 0, "pending": None, "signal": None}


def interruption() -> str | None:
    """The signal that interrupted this run, if one did. A library may turn our Interrupted into an error of its
    own (MindSpore's import reports 'ImportError: initialization failed'), so the boundary asks here."""
    return _RUN["signal"]


def _on_signal(signum, _frame):
    if _RUN["critical"]:  # between creating a temporary and taking charge of it: wait until it is ours
        _RUN["pending"] = signum
        return
    # later signals while we unwind and clean up are ignored; the guardian covers a hard kill
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    _RUN["signal"] = signal.Signals(signum).name
    raise Interrupted(signal.Signals(signum).name)


@contextlib.contextmanager
def _taking_charge():
    """Create-and-register steps that an interrupt must not split; the interrupt is raised right after."""
    _RUN["critical"] += 1
    try:
        yield
    finally:
        _RUN["critical"] -= 1
    if not _RUN["critical"] and _RUN["pending"] is not None:
        signum, _RUN["pending"] = _RUN["pending"], None
        _on_signal(signum, None)


def start_run() -> None:
    """Called once by the CLI before any framework is imported: signal handling, the guardian and the run's
    private TMPDIR. SIGINT/SIGTERM/SIGHUP raise Interrupted, so every `finally` on the way out cleans up."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    _GUARDIAN.start()
    with _taking_charge():
        scratch = Path(tempfile.mkdtemp(prefix="porting-"))
        _GUARDIAN.tell(f"+{scratch}")
        _RUN["scratch"] = scratch
    # the frameworks' own temporaries, ours and the workers' (they inherit the variable) all land here
    os.environ["TMPDIR"] = str(scratch)
    tempfile.tempdir = str(scratch)


def end_run() -> None:
    scratch = _RUN["scratch"]
    if scratch is not None:
        _remove(scratch)
        _GUARDIAN.tell(f"-{scratch}")
        _RUN["scratch"] = None
    _GUARDIAN.stop()


@contextlib.contextmanager
def guarded_process(start):
    """`start()` a child process that is killed if we are interrupted or fail, and by the guardian if we die."""
    proc = None
    try:
        with _taking_charge():
            proc = start()
            _GUARDIAN.tell(f"+#{proc.pid}")
        yield proc
    except BaseException:
        if proc is not None:
            proc.kill()
            proc.wait()
        raise
    finally:
        if proc is not None:
            if proc.poll() is None:  # its result was never collected: it has no reason to live on
                proc.kill()
                proc.wait()
            _GUARDIAN.tell(f"-#{proc.pid}")


def file_mode() -> int:
    """The mode a new ordinary file gets under the user's umask (mkstemp would give 0600)."""
    if _RUN["umask"] is None:
        mask = os.umask(0)
        os.umask(mask)
        _RUN["umask"] = mask
    return 0o666 & ~_RUN["umask"]


def folder_mode() -> int:
    """The mode a new folder gets under the user's umask (mkdtemp would give 0700)."""
    file_mode()
    return 0o777 & ~_RUN["umask"]


@contextlib.contextmanager
def scratch_dir(prefix: str = "porting-") -> Iterator[Path]:
    """A private temporary folder (inside the run's TMPDIR under the CLI), removed on exit and by the guardian."""
    path = None
    try:
        with _taking_charge():
            path = Path(tempfile.mkdtemp(prefix=prefix))
            _GUARDIAN.tell(f"+{path}")
        yield path
    finally:
        if path is not None:
            _remove(path)
            _GUARDIAN.tell(f"-{path}")


def _existing_ancestor(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise PortingError(f"cannot write '{path}': '{parent}' is a file, not a folder")
            return parent
    return Path(path.anchor)


def check_output(path: str | Path, inputs: tuple = (), what: str = "output", folder: bool = False) -> Path:
    """Refuse an output that is a folder (for a `folder` output: a file, or a folder with anything in it) or one
    of the inputs, or whose parent is a file. Returns it absolute."""
    final = Path(os.path.abspath(path))
    if folder and final.exists() and (not final.is_dir() or any(final.iterdir())):
        raise PortingError(f"{what} '{path}' exists: remove it or name a new folder")
    if final.is_dir() and not folder:
        raise PortingError(f"{what} '{path}' is a folder: name a file inside it")
    for source in inputs:
        if source is None:
            continue
        same = final == Path(os.path.abspath(source))
        with contextlib.suppress(OSError):
            same = same or (final.exists() and os.path.samefile(final, source))
        if same:
            raise PortingError(f"{what} '{path}' is the input '{source}': write to another file")
    _probe(_existing_ancestor(final), path)
    return final


def _probe(folder: Path, path) -> None:
    """Fail now, not after minutes of work, if nothing can be created where `path` goes."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".porting-probe-", dir=folder))
    except OSError as exc:
        raise PortingError(f"cannot write '{path}': {exc.strerror or exc}") from None


class Staged:
    """Where a writer puts the new file (`file`, inside the private folder `dir`)."""

    def __init__(self, directory: Path, name: str) -> None:
        self.dir = directory
        self.file = directory / name


@contextlib.contextmanager
def atomic_output(path: str | Path, inputs: tuple = (), what: str = "output", folder: bool = False
                  ) -> Iterator[Staged]:
    """Write `path` whole or not at all. The writer writes `staged.file` (or sets it to what it produced); with
    `folder`, a folder that is moved into place complete."""
    final = check_output(path, inputs, what, folder)
    anchor = _existing_ancestor(final)
    staging = None
    try:
        with _taking_charge():
            # beside the destination (on its filesystem, so the final move is a rename); in the nearest existing
            # ancestor when the parent does not exist yet: missing parents are created once the file is whole
            staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".porting-partial", dir=anchor))
            _GUARDIAN.tell(f"+{staging}")
        staged = Staged(staging, final.name)
        yield staged
        if not (staged.file.is_dir() if folder else staged.file.is_file()):
            raise PortingError(f"cannot write '{path}': the writer produced no {'folder' if folder else 'file'}")
        final.parent.mkdir(parents=True, exist_ok=True)
        for written in [*staged.file.rglob("*"), staged.file] if folder else [staged.file]:
            os.chmod(written, folder_mode() if written.is_dir() else file_mode())
        os.replace(staged.file, final)
    except OSError as exc:
        raise PortingError(f"cannot write '{path}': {exc.strerror or exc}") from None
    finally:
        if staging is not None:
            _remove(staging)
            _GUARDIAN.tell(f"-{staging}")


def writable_folder(path: str | Path, what: str = "output folder") -> Path:
    """Check early that a folder can be created or written (without leaving anything); returns it absolute."""
    folder = Path(os.path.abspath(path))
    if folder.exists() and not folder.is_dir():
        raise PortingError(f"{what} '{path}' is a file, not a folder")
    _probe(folder if folder.is_dir() else _existing_ancestor(folder), path)
    return folder
