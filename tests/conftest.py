"""Shared fixtures: the three event stores every backend-agnostic test runs against."""

import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from tests import pgserver

POSTGRES_URL_VARIABLE = "BSO_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database: the one CI started (BSO_TEST_POSTGRES_URL), else our own."""
    given = os.environ.get(POSTGRES_URL_VARIABLE)
    if given:
        yield given
        return
    if not pgserver.binaries_present():
        pytest.skip(
            f"PostgreSQL server binaries not found in {pgserver.BIN_DIR}: PostgreSQL tests skipped "
            f"(install postgresql-15 or set {POSTGRES_URL_VARIABLE})"
        )
    data_dir = pgserver.temporary_data_dir()
    try:
        yield pgserver.start(data_dir, pgserver.free_port())
    finally:
        pgserver.stop(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One URL per backend; every test using it runs three times."""
    return _backend_url(request, tmp_path)


@pytest.fixture(params=["sqlite", "postgres"])
def shared_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store that several applications (processes) can open at once."""
    return _backend_url(request, tmp_path)


@pytest.fixture
def postgres_database_url(postgres_url: str) -> str:
    """A fresh database of its own on the test PostgreSQL server."""
    return _isolated_postgres_database(postgres_url)


def _backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bso.db'}"
    return _isolated_postgres_database(request.getfixturevalue("postgres_url"))


def _isolated_postgres_database(base_url: str) -> str:
    """A fresh database on the shared server, so tests never see each other's events."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return base_url.rsplit("/", 1)[0] + "/" + name
