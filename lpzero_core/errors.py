"""The one exception type for expected failures: the CLI prints its message as one line and exits with status 2."""


class LPZeroError(Exception):
    """A user-facing error: the message names the file or argument at fault and how to fix it."""
