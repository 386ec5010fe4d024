"""Outputs that appear whole or not at all, and temporaries that never outlive the run.

- Every file porting writes goes through `atomic_output`: the writer (ours, MindSpore's, ONNX's, a worker's)
  writes into a private folder beside the destination, and only a complete file is moved into place, with the
  mode an ordinary file gets under the user's umask (0644 under umask 022). An existing file at the destination
  is replaced only by a complete new one; a failed run leaves it untouched.
- Everything else a run needs (worker jobs, intermediate exports, the frameworks' own temporaries) lives under
  one private folder in TMPDIR (`start_run` points TMPDIR there), removed when the run ends.
- Both are registered with a guardian: a small process forked at start-up, before any framework is imported.
  When the run ends, however it ends (kill -9 included), the guardian sees its pipe close, kills the registered
  process groups and worker processes and removes the registered folders. A folder is registered before it is
  created, so a kill at any instant leaves nothing unregistered. Workers also ask the kernel to kill them with
  their parent.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

from porting.errors import PortingError


class _Guardian:
    """The parent's side: one pipe to the guardian, lines '+path', '-path', '+#pid', '-#pid', '+%pgid', '-%pgid'."""

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

    def forget(self) -> None:
        """In a process forked by the command process (a dataset worker): no pipe to hold open."""
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None

    def stop(self) -> None:
        """Close our end and, in the process that started the guardian, wait until it has cleaned up."""
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
    groups: set[int] = set()
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
            elif item.startswith("%"):
                (groups.add if op == "+" else groups.discard)(int(item[1:]))
            elif op == "+":
                paths[item] = None
            else:
                paths.pop(item, None)
    for group in groups:
        with contextlib.suppress(OSError):
            os.killpg(group, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while (pids or groups) and time.monotonic() < deadline:  # a dying worker may still write into its scratch
        pids = {p for p in pids if os.path.exists(f"/proc/{p}") and not _is_zombie(p)}
        groups = {g for g in groups if _group_alive(g)}
        time.sleep(0.02)
    for path in reversed(list(paths)):
        _remove(Path(path))


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _group_alive(group: int) -> bool:
    """Whether a process of the group still runs (zombies waiting for a parent that never reaps them do not)."""
    try:
        os.killpg(group, 0)
    except OSError:
        return False
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                with open(f"/proc/{entry}/stat") as f:
                    state, _ppid, pgrp = f.read().rsplit(")", 1)[1].split()[:3]
                if int(pgrp) == group and state != "Z":
                    return True
    return False


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()


_GUARDIAN = _Guardian()
_RUN: dict = {"scratch": None, "umask": None}


def start_guardian() -> None:
    """Fork the guardian (porting.boundary, before the command process is forked and any framework loads)."""
    _GUARDIAN.start()


def guard_group(group: int) -> None:
    """The guardian kills this process group (the command process and all it started) when the run ends."""
    _GUARDIAN.tell(f"+%{group}")


def end_group(group: int) -> None:
    """Kill a process group (the command process and all it started) and wait until its processes are gone."""
    with contextlib.suppress(OSError):
        os.killpg(group, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _group_alive(group) and time.monotonic() < deadline:
        time.sleep(0.01)
    _GUARDIAN.tell(f"-%{group}")  # done: its number may go to another group now


def stop_guardian() -> None:
    """Let the guardian clean up now, and wait until it is done."""
    _GUARDIAN.stop()


def start_run() -> None:
    """In the command process, before any framework is imported: the run's private TMPDIR, and no guardian pipe
    held open by the processes it forks (a dataset worker outliving us must not keep the guardian waiting)."""
    os.register_at_fork(after_in_child=_GUARDIAN.forget)
    scratch = _private_dir(Path(tempfile.gettempdir()), "porting-")
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


def _private_dir(parent: Path, prefix: str, suffix: str = "") -> Path:
    """mkdtemp, registered with the guardian before it exists: a kill at any instant leaves nothing behind."""
    for _ in range(100):
        path = parent / f"{prefix}{secrets.token_hex(6)}{suffix}"
        _GUARDIAN.tell(f"+{path}")
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            _GUARDIAN.tell(f"-{path}")  # another run's: not ours to remove
            continue
        except BaseException:
            _GUARDIAN.tell(f"-{path}")
            raise
        return path
    raise FileExistsError(f"no unused temporary name in '{parent}'")


@contextlib.contextmanager
def guarded_process(start):
    """`start()` a child process that is killed if we fail, and with the command process's group if we die."""
    proc = None
    try:
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
        path = _private_dir(Path(tempfile.gettempdir()), prefix)
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
        probe = _private_dir(folder, ".porting-probe-")
        os.rmdir(probe)
        _GUARDIAN.tell(f"-{probe}")
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
        # beside the destination (on its filesystem, so the final move is a rename); in the nearest existing
        # ancestor when the parent does not exist yet: missing parents are created once the file is whole
        staging = _private_dir(anchor, f".{final.name}.", ".porting-partial")
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
