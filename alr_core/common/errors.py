"""The exception types that reach a user as a message instead of a traceback."""


class AlrError(Exception):
    """Bad input or configuration: the message names the file, key or value and what is valid."""


class AwaitingAnswers(AlrError):
    """A round stops until experts save their answers file: the normal pause of a human-oracle
    run, not a fault in the user's inputs or results (so no restore hint follows it)."""
