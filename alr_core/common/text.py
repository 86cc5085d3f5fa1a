"""Small helpers for the text of user-facing messages."""


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun`` in the matching number: "1 expert answer", "3 expert answers"
    (``plural`` for nouns that do not just take an "s")."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def rounded(value: float | None, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals for a message; "n/a" when it is not known (None)."""
    return "n/a" if value is None else f"{value:.{digits}f}"
