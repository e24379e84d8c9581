"""Schemathesis over the served /openapi.json, all checks, on SQLite and PostgreSQL (fixed seed).

``python -m bench.fuzz`` runs the same with more examples and a random seed.
"""

from pathlib import Path


from tests.schema_fuzz import SERVER_ENV, fuzz, seed_history
from tests.servers import running_server

EXAMPLES_PER_OPERATION = 25
SEED = 20261129


def test_served_api_conforms_to_its_document(shared_database_url: str, tmp_path: Path) -> None:
    with running_server(shared_database_url, tmp_path, **SERVER_ENV) as server:
        seed_history(server.url)
        result = fuzz(server.url, EXAMPLES_PER_OPERATION, SEED)
    assert result.examples > 100
    assert not any(key.endswith(" 500") for key in result.statuses), result.statuses
    assert result.failures == [], "\n\n".join(result.failures[:5])
