"""Schemathesis over the served /openapi.json, all checks, on SQLite and PostgreSQL, with and
without a token (fixed seed).

``python -m bench.fuzz`` runs the same with more examples and a random seed.
"""

from pathlib import Path

import pytest

from tests.schema_fuzz import SERVER_ENV, fuzz, seed_history
from tests.servers import running_server

EXAMPLES_PER_OPERATION = 25
SEED = 20261129


@pytest.mark.parametrize("server_env", [SERVER_ENV, {}], ids=["write token", "no token"])
def test_served_api_conforms_to_its_document(shared_database_url: str, tmp_path: Path, server_env: dict[str, str]) -> None:
    """The document differs with the tokens enforced (tests/test_openapi.py): each is checked."""
    with running_server(shared_database_url, tmp_path, **server_env) as server:
        seed_history(server.url)
        result = fuzz(server.url, EXAMPLES_PER_OPERATION, SEED)
    assert result.examples > 100
    assert not any(key.endswith(" 500") for key in result.statuses), result.statuses
    assert result.failures == [], "\n\n".join(result.failures[:5])
