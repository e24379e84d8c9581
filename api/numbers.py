"""The one rule for whole numbers typed by people or put in URLs (path, query, CLI flags).

Only ASCII digits (no sign, no spaces, no '²' or fullwidth digits, which
``str.isdigit`` and ``int`` accept) and at most the stores' 64-bit integer
range, so a number accepted here means the same on SQLite and PostgreSQL.
"""

MAX_NUMBER = 2**63 - 1


def parse_number(text: str, minimum: int, maximum: int = MAX_NUMBER) -> int:
    """``text`` as an integer in ``[minimum, maximum]``; ValueError with a readable reason."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_NUMBER)):
        raise ValueError(f"must be a whole number of ASCII digits between {minimum} and {maximum}, got {_shown(text)}")
    value = int(text)
    if not minimum <= value <= maximum:
        raise ValueError(f"must be between {minimum} and {maximum}, got {_shown(text)}")
    return value


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")
