"""The one exception users see: a single line naming the file, tensor, shape or model at fault."""
from __future__ import annotations

from typing import Mapping, Sequence


class PortingError(Exception):
    """A problem with the user's input or environment, reported as one line and exit code 2."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (libraries raise multi-line ones), or its type."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def describe_os_error(exc: OSError) -> str:
    """'cannot write '/x/y': No space left on device' from an OSError that reached the boundary."""
    reason = exc.strerror or first_line(exc)
    if exc.filename is not None:
        return f"'{exc.filename}': {reason}"
    return reason


def _listed(names: Sequence[str], what: str) -> str:
    shown = ", ".join(names[:5]) + ("..." if len(names) > 5 else "")
    return f"{len(names)} {what}" + (f" ({shown})" if names else "")


def does_not_fit(path: str, model: str, missing: Sequence[str], unexpected: Sequence[str],
                 wrong_shapes: Sequence[str] = ()) -> PortingError:
    """'FILE does not fit MODEL: N missing (a, b...), M unexpected (...), K wrong shapes (...)'."""
    return PortingError(f"'{path}' does not fit {model}: {_listed(list(missing), 'missing')}, "
                        f"{_listed(list(unexpected), 'unexpected')}, {_listed(list(wrong_shapes), 'wrong shapes')}")


def check_fits(path: str, model: str, have: Mapping[str, tuple], want: Mapping[str, tuple]) -> None:
    """Every tensor of the model present in the file with its shape, and nothing else: else one line listing all."""
    missing = [k for k in want if k not in have]
    unexpected = [k for k in have if k not in want]
    wrong = [f"{k} {list(have[k])} != {list(want[k])}" for k in have
             if k in want and tuple(have[k]) != tuple(want[k])]
    if missing or unexpected or wrong:
        raise does_not_fit(path, model, missing, unexpected, wrong)
