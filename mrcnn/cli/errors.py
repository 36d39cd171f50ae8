"""The error of a bad argument or input."""


class CliError(Exception):
    """A bad argument or input; main() prints the message (no traceback) and exits 2."""
