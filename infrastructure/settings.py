"""Service settings from the environment (``BSO_*``), overridable by CLI flags."""

import ipaddress
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import quote, unquote, urlsplit

from domain.spec import POLICIES, ZEUS, SpecLimits
from infrastructure.tokens import TokenFileError, read_tokens

# How long PostgreSQL may keep a request waiting (connect and pool checkout; one statement).
DEFAULT_STORE_WAIT_SECONDS = 2.0
DEFAULT_STATEMENT_TIMEOUT_SECONDS = 10.0

DEFAULT_DATABASE_URL = "sqlite:///bso.db"
POSTGRES_SCHEMES = ("postgresql", "postgres")


class SettingsError(ValueError):
    """A setting has a value the service cannot use."""


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8000
    trial_lease_seconds: float = 86400.0
    create_schema: bool = True
    pool_size: int = 5
    pool_max_overflow: int = 10
    max_body_bytes: int = 1_048_576
    log_level: str = "info"
    worker_threads: int | None = None  # None: the store's default, see command_threads()
    auth_token: str | None = None
    auth_reads: bool = False
    allow_unauthenticated: bool = False
    spec_limits: SpecLimits = SpecLimits()
    default_policy: str = ZEUS
    read_token: str | None = None
    read_threads: int = 1
    max_reanalyses: int = 1
    body_timeout_seconds: float = 30.0
    tokens_file: str | None = None  # scoped tokens (infrastructure/tokens.py)
    # Faults and limits (docs/operations.md, "Faults and limits").
    store_wait_seconds: float = DEFAULT_STORE_WAIT_SECONDS  # PostgreSQL connect and pool checkout; one operation's retries
    statement_timeout_seconds: float = DEFAULT_STATEMENT_TIMEOUT_SECONDS  # PostgreSQL statement_timeout
    graceful_timeout_seconds: float = 30.0  # in-flight requests' time to finish at shutdown
    header_timeout_seconds: float = 10.0  # a request's head must arrive within this
    max_header_bytes: int = 32768  # request line and headers together
    max_headers: int = 100
    max_connections: int = 1000  # per worker process; more are answered 503 and closed

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        environ = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            database_url=environ.get("BSO_DATABASE_URL", defaults.database_url),
            host=environ.get("BSO_HOST", defaults.host),
            port=_number(environ, "BSO_PORT", defaults.port, int),
            trial_lease_seconds=_number(environ, "BSO_TRIAL_LEASE_SECONDS", defaults.trial_lease_seconds, float),
            create_schema=environ.get("BSO_CREATE_SCHEMA", "y").lower() not in ("n", "no", "0", "false"),
            pool_size=_number(environ, "BSO_POOL_SIZE", defaults.pool_size, int),
            pool_max_overflow=_number(environ, "BSO_POOL_MAX_OVERFLOW", defaults.pool_max_overflow, int),
            max_body_bytes=_number(environ, "BSO_MAX_BODY_BYTES", defaults.max_body_bytes, int),
            worker_threads=_positive_or_none(_number(environ, "BSO_WORKER_THREADS", None, int), "BSO_WORKER_THREADS"),
            log_level=environ.get("BSO_LOG_LEVEL", defaults.log_level),
            auth_token=environ.get("BSO_AUTH_TOKEN") or None,
            auth_reads=_flag(environ, "BSO_AUTH_READS", defaults.auth_reads),
            allow_unauthenticated=_flag(environ, "BSO_ALLOW_UNAUTHENTICATED", defaults.allow_unauthenticated),
            spec_limits=_spec_limits(environ),
            default_policy=_choice(environ, "BSO_DEFAULT_POLICY", defaults.default_policy, POLICIES),
            read_token=environ.get("BSO_READ_TOKEN") or None,
            read_threads=_at_least_one(environ, "BSO_READ_THREADS", defaults.read_threads),
            max_reanalyses=_at_least_one(environ, "BSO_MAX_REANALYSES", defaults.max_reanalyses),
            body_timeout_seconds=_number(environ, "BSO_BODY_TIMEOUT_SECONDS", defaults.body_timeout_seconds, float),
            tokens_file=environ.get("BSO_TOKENS_FILE") or None,
            store_wait_seconds=_positive_number(environ, "BSO_STORE_WAIT_SECONDS", defaults.store_wait_seconds),
            statement_timeout_seconds=_positive_number(
                environ, "BSO_STATEMENT_TIMEOUT_SECONDS", defaults.statement_timeout_seconds
            ),
            graceful_timeout_seconds=_positive_number(
                environ, "BSO_GRACEFUL_TIMEOUT", defaults.graceful_timeout_seconds
            ),
            header_timeout_seconds=_positive_number(
                environ, "BSO_HEADER_TIMEOUT_SECONDS", defaults.header_timeout_seconds
            ),
            max_header_bytes=_at_least_one(environ, "BSO_MAX_HEADER_BYTES", defaults.max_header_bytes),
            max_headers=_at_least_one(environ, "BSO_MAX_HEADERS", defaults.max_headers),
            max_connections=_at_least_one(environ, "BSO_MAX_CONNECTIONS", defaults.max_connections),
        )

    def override(self, **changes: Any) -> "Settings":
        """These settings with every change that is not None applied (CLI flags)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def sqlite_path(self) -> str | None:
        """The SQLite file the database URL names, or None for another store."""
        return persistence_env(self.database_url).get("SQLITE_DBNAME")

    @property
    def writes_need_token(self) -> bool:
        """Whether the mutating routes answer 401 without a token (api/http/auth.py enforces it)."""
        return bool(self.auth_token or self.tokens_file)

    @property
    def reads_need_token(self) -> bool:
        """Whether the read routes answer 401 without a token."""
        return bool((self.auth_token and self.auth_reads) or self.read_token or self.tokens_file)

    @property
    def uses_postgres(self) -> bool:
        return urlsplit(self.database_url).scheme in POSTGRES_SCHEMES

    def command_threads(self) -> int:
        """Threads per worker process that run commands: BSO_WORKER_THREADS, else the store's default."""
        if self.worker_threads is not None:
            return self.worker_threads
        # A PostgreSQL command waits on round trips that other threads can use; a SQLite
        # command holds the GIL or the file's write lock, so more threads only queue.
        return 4 if self.uses_postgres else 2

    def check_exposure(self) -> None:
        """Refuse to serve mutating routes without a token beyond this machine, unless told to,
        and refuse a tokens file that cannot be used."""
        if self.tokens_file:
            try:
                read_tokens(Path(self.tokens_file))
            except TokenFileError as error:
                raise SettingsError(str(error)) from None
        if self.auth_token or self.tokens_file or self.allow_unauthenticated or _is_loopback(self.host):
            return
        raise SettingsError(
            f"Refusing to bind {self.host} without authentication: anyone who can reach it could "
            "register, report and delete jobs. Set BSO_AUTH_TOKEN (clients then send "
            "'Authorization: Bearer <token>'), or pass --allow-unauthenticated "
            "(BSO_ALLOW_UNAUTHENTICATED=y) for trainers that cannot send a token, such as "
            "Zeus's own client, on a network you trust."
        )

    def persistence_env(self, read_only: bool = False) -> dict[str, str]:
        """The eventsourcing environment for ``database_url`` (``read_only``: never writes nor creates a file)."""
        return persistence_env(
            self.database_url,
            create_schema=self.create_schema and not read_only,
            pool_size=self.pool_size,
            pool_max_overflow=self.pool_max_overflow,
            read_only=read_only,
            store_wait_seconds=self.store_wait_seconds,
            statement_timeout_seconds=self.statement_timeout_seconds,
        )


# Each cap of domain.spec.SpecLimits and the variable that sets it.
_LIMIT_VARIABLES = {
    "batch_sizes": "BSO_MAX_BATCH_SIZES",
    "num_pruning_rounds": "BSO_MAX_PRUNING_ROUNDS",
    "window_size": "BSO_MAX_WINDOW_SIZE",
    "max_epochs": "BSO_MAX_EPOCHS",
    "mab_num_explorations": "BSO_MAX_EXPLORATIONS",
    "stop_window": "BSO_MAX_STOP_WINDOW",
}


def _spec_limits(environ: Mapping[str, str]) -> SpecLimits:
    defaults = SpecLimits()
    caps = {}
    for name, key in _LIMIT_VARIABLES.items():
        cap = _number(environ, key, getattr(defaults, name), int)
        if cap < 1:
            raise SettingsError(f"{key} must be at least 1, got {cap}")
        caps[name] = cap
    return SpecLimits(**caps)


def _choice(environ: Mapping[str, str], key: str, default: str, choices: tuple[str, ...]) -> str:
    value = environ.get(key) or default
    if value not in choices:
        raise SettingsError(f"{key}={value!r} is not one of {', '.join(choices)}")
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def _flag(environ: Mapping[str, str], key: str, default: bool) -> bool:
    raw = environ.get(key)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("y", "yes", "1", "true", "on"):
        return True
    if raw.lower() in ("n", "no", "0", "false", "off"):
        return False
    raise SettingsError(f"{key}={raw!r} is not a yes/no value")


def _positive_or_none(value: int | None, key: str) -> int | None:
    if value is not None and value < 1:
        raise SettingsError(f"{key} must be at least 1, got {value}")
    return value


def _at_least_one(environ: Mapping[str, str], key: str, default: int) -> int:
    value = _number(environ, key, default, int)
    if value < 1:
        raise SettingsError(f"{key} must be at least 1, got {value}")
    return value


def _positive_number(environ: Mapping[str, str], key: str, default: float) -> float:
    value = _number(environ, key, default, float)
    if not value > 0:  # also refuses nan
        raise SettingsError(f"{key} must be a positive number of seconds, got {value}")
    return value


def _number(environ: Mapping[str, str], key: str, default: Any, kind: type) -> Any:
    raw = environ.get(key)
    if raw is None or raw == "":
        return default
    try:
        return kind(raw)
    except ValueError:
        raise SettingsError(f"{key}={raw!r} is not a valid {kind.__name__}") from None


def read_only_uri(path: str) -> str:
    """A SQLite URI that opens ``path`` read-only: nothing written, no database created when missing.

    A WAL database read where its folder is writable gets SQLite's usual ``-wal`` and
    ``-shm`` companions (shared with any writer). On read-only media they cannot be
    created, and SQLite then needs ``immutable=1``, which is right only when nothing can
    change the file: so it is used only where the folder cannot be written and no
    ``-wal`` file (a writer's trace) is there.
    """
    folder = os.path.dirname(os.path.abspath(path))
    frozen = not os.access(folder, os.W_OK) and not os.path.exists(path + "-wal")
    return f"file:{quote(path)}?mode=ro" + ("&immutable=1" if frozen else "")


def persistence_env(
    database_url: str,
    *,
    create_schema: bool = True,
    pool_size: int = 5,
    pool_max_overflow: int = 10,
    read_only: bool = False,
    store_wait_seconds: float = DEFAULT_STORE_WAIT_SECONDS,
    statement_timeout_seconds: float = DEFAULT_STATEMENT_TIMEOUT_SECONDS,
) -> dict[str, str]:
    """Map ``memory://``, ``sqlite:///path`` or ``postgresql://...`` to eventsourcing settings."""
    url = urlsplit(database_url)
    if url.scheme == "memory":
        return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    if url.scheme == "sqlite":
        path = unquote(url.path)
        if url.netloc:  # sqlite://relative/path is a common slip for sqlite:///relative/path
            path = url.netloc + path
        elif database_url.startswith("sqlite:////"):
            path = "/" + path.lstrip("/")  # sqlite:////abs/bso.db is absolute
        else:
            path = path.removeprefix("/")  # sqlite:///bso.db is relative
        if not path:
            raise SettingsError(f"{database_url!r} names no database file")
        return {
            "PERSISTENCE_MODULE": "infrastructure.sqlite_store:DurableSQLiteFactory",
            "APPLICATION_RECORDER_TOPIC": "infrastructure.trial_view_store:ViewedSQLiteRecorder",
            "SQLITE_DBNAME": read_only_uri(path) if read_only else path,
            "SQLITE_LOCK_TIMEOUT": "30",
            "CREATE_TABLE": "y" if create_schema else "n",
        }
    if url.scheme in POSTGRES_SCHEMES:
        if not url.hostname or not url.path.strip("/"):
            raise SettingsError(f"{database_url!r} must name a host and a database")
        return {
            "PERSISTENCE_MODULE": "infrastructure.postgres_store:BoundedPostgresFactory",
            "APPLICATION_RECORDER_TOPIC": "infrastructure.trial_view_store:ViewedPostgresRecorder",
            "POSTGRES_DBNAME": unquote(url.path.strip("/")),
            "POSTGRES_HOST": url.hostname,
            "POSTGRES_PORT": str(url.port or 5432),
            "POSTGRES_USER": unquote(url.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(url.password or ""),
            "POSTGRES_POOL_SIZE": str(pool_size),
            "POSTGRES_MAX_OVERFLOW": str(pool_max_overflow),
            # Every wait on PostgreSQL is bounded (docs/operations.md, "Faults and limits"): connecting and
            # taking a pooled connection (seconds), and each statement (milliseconds).
            "POSTGRES_CONNECT_TIMEOUT": str(max(1, math.ceil(store_wait_seconds))),
            "POSTGRES_STORE_WAIT_SECONDS": f"{store_wait_seconds:g}",
            "POSTGRES_STATEMENT_TIMEOUT_MS": str(max(1, round(statement_timeout_seconds * 1000))),
            "CREATE_TABLE": "y" if create_schema else "n",
        }
    raise SettingsError(
        f"Unsupported database URL {database_url!r}: use sqlite:///path/to/file.db, "
        "postgresql://user:password@host:port/dbname or memory://"
    )
