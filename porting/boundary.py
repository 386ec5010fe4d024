"""The one boundary every command runs through: any failure becomes one `error:` line and exit 2.

- PortingError (anticipated: bad input, bad environment) -> its message.
- Usage errors (a bad flag value, a missing argument) -> click's one-line message.
- OSError (disk full, read-only filesystem, permission...) -> the path and the system's reason.
- Ctrl-C -> `error: interrupted`, exit 130; SIGTERM / SIGHUP -> `error: terminated by SIGTERM`, exit 2.
- Anything else -> its type and first line; `porting --verbose ...` prints the traceback as well.

Signals are handled by a process that loads no framework. The process the user started (the supervisor) forks
the command process into a process group of its own and waits for it. A signal never reaches the frameworks:
MindSpore replaces the SIGINT handler once it runs a graph, a Python handler waits while a long MindSpore call
holds the main thread, and a Python interpreter stopped half-way through importing MindSpore crashes on its way
out. On SIGINT, SIGTERM or SIGHUP the supervisor kills the command's whole group (its dataset and source workers
too) at once, lets the guardian (porting.files) remove what the command had not finished, prints the one line and
exits. Ctrl-Z stops the group with the supervisor; `fg` and `bg` continue it. The command process itself ends by
os._exit once its exit handlers ran and its output is flushed: the interpreter's teardown has nothing left to do
and can crash with framework threads still running.
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import sys
import traceback

from porting import files
from porting.errors import PortingError, describe_os_error, first_line

STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1


def verbose() -> bool:
    return os.environ.get("PORTING_VERBOSE", "") not in ("", "0")


def quiet_start() -> None:
    """Called at the top of porting.cli, before the third of a second its imports take: when porting's command
    line is the program (not a test or a notebook importing it), a signal during that start-up is the one line
    too. Nothing exists yet to clean up; run() takes over."""
    main = getattr(sys.modules.get("__main__"), "__file__", None) or ""
    if os.path.basename(main) == "porting" or main.endswith(os.path.join("porting", "__main__.py")):
        for sig in STOPPING:
            signal.signal(sig, _stopped_at_start)


def _stopped_at_start(signum: int, _frame) -> None:
    os._exit(_ended_by(signum))


def run(app) -> int:
    """Run the command line `app` in a command process; returns its exit code (in the supervisor)."""
    files.start_guardian()
    sys.stdout.flush()
    sys.stderr.flush()
    # until both sides have their own handlers, a signal waits (the supervisor's handlers act on the child's pid)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {*STOPPING, signal.SIGTSTP})
    supervisor = os.getpid()
    pid = os.fork()
    if pid == 0:
        _become_command_process(supervisor)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        _exit(_command(app))
    with contextlib.suppress(OSError):  # also here: the group must exist before the first kill
        os.setpgid(pid, pid)
    files.guard_group(pid)
    return _Supervisor(pid, mask).wait()


def _become_command_process(supervisor: int) -> None:
    os.setpgid(0, 0)  # the terminal's Ctrl-C and a signal to the user's process group reach the supervisor only
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # dies with it, even by kill -9
    if os.getppid() != supervisor:
        os._exit(1)
    for sig in STOPPING:
        signal.signal(sig, signal.SIG_IGN)  # drops one that arrived before the fork was done: the supervisor has it
        signal.signal(sig, signal.SIG_DFL)  # one sent to this process alone ends it; the supervisor reports it
    signal.signal(signal.SIGTSTP, signal.SIG_DFL)
    # a background group writing to the terminal under `stty tostop` would be stopped; ignored, the write goes on
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)


def _command(app) -> int:
    try:
        try:
            files.start_run()
            return int(app(standalone_mode=False) or 0)
        finally:
            files.end_run()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else _fail(str(exc.code))
    except BaseException as exc:  # noqa: BLE001 - the boundary: nothing may escape as a traceback
        return _report(exc)


def _exit(code: int) -> None:
    """End the command process: the exit handlers the frameworks registered run (under msrun, MindSpore's tells
    the scheduler this rank finished), the interpreter's teardown of half-stopped framework threads does not."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


class _Supervisor:
    """Waits for the command process; on a signal, ends its group and reports in one line."""

    def __init__(self, pid: int, mask) -> None:
        self.pid = pid
        for sig in STOPPING:
            signal.signal(sig, self._on_signal)
        signal.signal(signal.SIGTSTP, self._on_suspend)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def wait(self) -> int:
        # the handlers run while it waits (PEP 475 retries the wait); WNOWAIT: its pid stays its own until reaped
        ended = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
        for sig in (*STOPPING, signal.SIGTSTP):  # the command is over: its result stands
            signal.signal(sig, signal.SIG_IGN)
        self._end_group()  # whatever the command process left running (a framework's helper process)
        files.stop_guardian()
        if ended.si_code == os.CLD_EXITED:
            return ended.si_status
        return _ended_by(ended.si_status)

    def _end_group(self) -> None:
        files.end_group(self.pid)
        with contextlib.suppress(OSError):  # the process itself, in case it died before making its group
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)

    def _on_signal(self, signum: int, _frame) -> None:
        for sig in STOPPING:
            signal.signal(sig, signal.SIG_IGN)
        self._end_group()
        code = _ended_by(signum)
        files.stop_guardian()  # removes the temporaries and partial outputs the command left
        os._exit(code)

    def _on_suspend(self, _signum: int, _frame) -> None:
        """Ctrl-Z: the command's group stops with us, and continues when we do (fg, bg)."""
        with contextlib.suppress(OSError):
            os.killpg(self.pid, signal.SIGSTOP)
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTSTP)  # stops here until SIGCONT
        signal.signal(signal.SIGTSTP, self._on_suspend)
        with contextlib.suppress(OSError):
            os.killpg(self.pid, signal.SIGCONT)


def _ended_by(signum: int) -> int:
    """The line for a command process ended by a signal: ours (passed on) or another's (the OOM killer...)."""
    name = signal.Signals(signum).name
    if signum == signal.SIGINT:
        return _fail("interrupted", 130)
    if signum in STOPPING:
        return _fail(f"terminated by {name}")
    return _fail(f"the command's process was killed by {name}"
                 + (" (out of memory?)" if signum == signal.SIGKILL else " (a crash in a framework's code)"))


def _report(exc: BaseException) -> int:
    import typer  # here: porting.cli imports this module before typer, to be quiet_start() sooner
    from typer._click.exceptions import NoArgsIsHelpError

    if isinstance(exc, (typer.Abort, KeyboardInterrupt)):
        return _fail("interrupted", 130)
    if isinstance(exc, NoArgsIsHelpError):  # `porting` alone: its help, not an error
        print(exc.ctx.get_help())
        return 0
    if isinstance(exc, typer.TyperException):  # usage errors: a bad flag value, a missing argument...
        ctx = getattr(exc, "ctx", None)
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        return _fail(message + (f" (see {ctx.command_path} --help)" if ctx else ""))
    if isinstance(exc, PortingError):
        return _fail(str(exc))
    if isinstance(exc, OSError):
        return _fail(f"cannot access {describe_os_error(exc)}")
    if isinstance(exc, MemoryError):
        return _fail("out of memory")
    if verbose():
        traceback.print_exception(exc)
    return _fail(f"unexpected {type(exc).__name__}: {first_line(exc)}"
                 + ("" if verbose() else " (porting --verbose ... prints the traceback)"))


def _fail(message: str, code: int = 2) -> int:
    """One line on stderr, written whole with one system call (also from a signal handler). On a terminal it
    starts at the line's beginning, over the ^C the terminal echoed or a progress bar the command left, and the
    cursor a progress bar hid comes back."""
    line = f"error: {' '.join(message.split())}\n"
    if os.isatty(2):
        line = "\r\x1b[K\x1b[?25h" + line
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    with contextlib.suppress(OSError):
        os.write(2, line.encode(errors="replace"))
    return code
