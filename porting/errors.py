"""The one exception users see: a single line naming the file, tensor, shape or model at fault."""


class PortingError(Exception):
    """A problem with the user's input or environment, reported as one line and exit code 2."""
