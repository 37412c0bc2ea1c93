"""Errors that end a command with a clear message instead of a traceback."""


class HostsetupError(Exception):
    """A user-facing failure: the message says what went wrong and what to do."""
