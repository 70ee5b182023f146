"""Errors for problems in a user's trace file: the CLI prints them without a traceback."""


class TraceError(ValueError):
    """A trace cannot be read as asked; the message names the file, line, column and the fix."""
