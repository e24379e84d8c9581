"""Settings from the environment and database URLs mapped to event stores."""

import pytest

from infrastructure.settings import Settings, SettingsError, persistence_env


def test_defaults_serve_sqlite_on_loopback() -> None:
    settings = Settings.from_env({})
    assert (settings.database_url, settings.host, settings.port) == ("sqlite:///bso.db", "127.0.0.1", 8000)
    assert persistence_env(settings.database_url)["SQLITE_DBNAME"] == "bso.db"


@pytest.mark.parametrize(
    ("url", "key", "expected"),
    [
        ("sqlite:///data/bso.db", "SQLITE_DBNAME", "data/bso.db"),
        ("sqlite:////var/lib/bso.db", "SQLITE_DBNAME", "/var/lib/bso.db"),
        ("memory://", "PERSISTENCE_MODULE", "eventsourcing.popo"),
        ("postgresql://u:p%40ss@127.0.0.1:5433/bso", "POSTGRES_PASSWORD", "p@ss"),
        ("postgresql://u@127.0.0.1/bso", "POSTGRES_PORT", "5432"),
    ],
)
def test_database_urls(url: str, key: str, expected: str) -> None:
    assert persistence_env(url)[key] == expected


@pytest.mark.parametrize("url", ["mysql://x/y", "postgresql://127.0.0.1", "sqlite://", "bso.db"])
def test_unusable_database_urls_are_explained(url: str) -> None:
    with pytest.raises(SettingsError, match="database|host|file"):
        persistence_env(url)


def test_numbers_and_flags_are_checked() -> None:
    assert Settings.from_env({"BSO_WORKER_THREADS": "3"}).command_threads() == 3
    assert Settings.from_env({}).command_threads() == 2  # SQLite: no round trips to overlap
    assert Settings.from_env({"BSO_DATABASE_URL": "postgresql://h/db"}).command_threads() == 4
    with pytest.raises(SettingsError, match="BSO_WORKER_THREADS"):
        Settings.from_env({"BSO_WORKER_THREADS": "0"})
    with pytest.raises(SettingsError, match="BSO_PORT"):
        Settings.from_env({"BSO_PORT": "eighty"})


def test_flags_override_the_environment() -> None:
    settings = Settings.from_env({"BSO_PORT": "9000"}).override(port=9100, host=None)
    assert (settings.port, settings.host) == (9100, "127.0.0.1")
