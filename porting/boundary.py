"""The one boundary every command runs through: any failure becomes one `error:` line and exit 2.

- PortingError (anticipated: bad input, bad environment) -> its message.
- Usage errors (a bad flag value, a missing argument) -> click's one-line message.
- OSError (disk full, read-only filesystem, permission...) -> the path and the system's reason.
- Ctrl-C -> `error: interrupted`, exit 130; SIGTERM / SIGHUP -> `error: terminated by SIGTERM`, exit 2.
- Anything else -> its type and first line; `porting --verbose ...` prints the traceback as well.
Temporaries are removed on every path out (porting.files), and by the guardian if the process is killed.
"""
from __future__ import annotations

import os
import sys
import traceback

import typer
from typer._click.exceptions import NoArgsIsHelpError

from porting import files
from porting.errors import Interrupted, PortingError, describe_os_error, first_line


def verbose() -> bool:
    return os.environ.get("PORTING_VERBOSE", "") not in ("", "0")


def run(app) -> int:
    try:
        try:
            files.start_run()
            return int(app(standalone_mode=False) or 0)
        finally:
            files.end_run()
    except Interrupted as exc:
        return _interrupted(exc.signame)
    except Exception as exc:  # noqa: BLE001 - the boundary: nothing may escape as a traceback
        signame = files.interruption()  # our Interrupted, turned by a library into an error of its own
        return _interrupted(signame) if signame else _report(exc)


def _interrupted(signame: str) -> int:
    return _fail("interrupted", 130) if signame == "SIGINT" else _fail(f"terminated by {signame}")


def _report(exc: Exception) -> int:
    if isinstance(exc, typer.Abort):
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
    print(f"error: {' '.join(message.split())}", file=sys.stderr, flush=True)
    return code
