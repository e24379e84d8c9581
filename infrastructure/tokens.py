"""Scoped tokens: which bearer tokens may use which jobs, read from ``BSO_TOKENS_FILE``.

The file holds no token, only each one's SHA-256, so that reading it gives nothing away:

    {"tokens": [{"name": "team-a", "sha256": "<hex>", "prefixes": ["teama-"], "role": "write"}]}

A token may use (``write``: register, predict, report, end, delete and read; ``read``:
read only) the jobs whose id starts with one of its prefixes. ``TokenFile.reload`` reads
the file again (``bso serve`` does on SIGHUP); a file that cannot be used keeps the tokens
read before and says why.
"""

import hashlib
import json
import logging
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger("bso.tokens")

WRITE = "write"
READ = "read"
ROLES = (WRITE, READ)


class TokenFileError(ValueError):
    """The tokens file cannot be read or says something impossible; the message says what."""


@dataclass(frozen=True)
class ScopedToken:
    name: str
    sha256: str
    prefixes: tuple[str, ...]
    role: str

    def as_entry(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "prefixes": list(self.prefixes), "role": self.role}


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(name: str, prefixes: list[str], role: str) -> tuple[str, ScopedToken]:
    """A fresh random token and the entry that grants it, checked as the file's entries are."""
    token = secrets.token_urlsafe(32)
    entry = _entry({"name": name, "sha256": token_digest(token), "prefixes": prefixes, "role": role}, 0)
    return token, entry


def read_tokens(path: Path) -> dict[str, ScopedToken]:
    """The file's tokens by SHA-256; TokenFileError naming what is wrong."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise TokenFileError(f"cannot read the tokens file {path}: {error.strerror}") from None
    except ValueError as error:
        raise TokenFileError(f"the tokens file {path} is not JSON: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("tokens"), list):
        raise TokenFileError(f'the tokens file {path} must be an object with a "tokens" list')
    tokens: dict[str, ScopedToken] = {}
    for index, item in enumerate(document["tokens"]):
        entry = _entry(item, index)
        if entry.sha256 in tokens:
            raise TokenFileError(f"tokens[{index}] ({entry.name}) repeats the sha256 of {tokens[entry.sha256].name}")
        tokens[entry.sha256] = entry
    return tokens


def _entry(item: Any, index: int) -> ScopedToken:
    where = f"tokens[{index}]"
    if not isinstance(item, dict):
        raise TokenFileError(f"{where} must be an object")
    name, digest, prefixes, role = item.get("name"), item.get("sha256"), item.get("prefixes"), item.get("role")
    if not isinstance(name, str) or not name:
        raise TokenFileError(f"{where}.name must be a non-empty string")
    if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
        raise TokenFileError(f"{where}.sha256 must be 64 hex digits (the SHA-256 of the token)")
    if not isinstance(prefixes, list) or not prefixes or not all(isinstance(p, str) and p for p in prefixes):
        raise TokenFileError(f"{where}.prefixes must be a non-empty list of non-empty job id prefixes")
    if role not in ROLES:
        raise TokenFileError(f"{where}.role must be one of {', '.join(ROLES)}, got {role!r}")
    return ScopedToken(name, digest.lower(), tuple(prefixes), role)


class TokenFile:
    """The tokens of one file, as last read successfully."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._tokens = read_tokens(path)  # a server does not start on a file it cannot use

    def find(self, token: str) -> ScopedToken | None:
        with self._lock:
            return self._tokens.get(token_digest(token))

    def reload(self) -> None:
        """Read the file again; on a failure keep the tokens read before, and log why."""
        try:
            tokens = read_tokens(self.path)
        except TokenFileError as error:
            logger.error("tokens file not reloaded, the previous tokens stay in force: %s", error)
            return
        with self._lock:
            self._tokens = tokens
        logger.info("tokens file reloaded: %d tokens", len(tokens))
