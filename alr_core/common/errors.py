"""The one exception type that reaches a user as a message instead of a traceback."""


class AlrError(Exception):
    """Bad input or configuration: the message names the file, key or value and what is valid."""
