"""The one exception users see: a single line naming the file, tensor, shape or model at fault."""


class PortingError(Exception):
    """A problem with the user's input or environment, reported as one line and exit code 2."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (libraries raise multi-line ones), or its type."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def does_not_fit(path: str, model: str, missing: list[str], unexpected: list[str]) -> PortingError:
    """'FILE does not fit MODEL: N missing (a, b...), M unexpected (...)'."""
    def listed(names):
        return f"{len(names)} {{}} ({', '.join(names[:5])}{'...' if len(names) > 5 else ''})"

    return PortingError(f"'{path}' does not fit {model}: {listed(missing).format('missing')}, "
                        f"{listed(unexpected).format('unexpected')}")
