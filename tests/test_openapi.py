"""The OpenAPI document covers every route, resolves every schema it names, and states what
this server enforces: which operations need a token, its caps, every bound."""

import json

import pytest
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from api.http.app import create_app
from domain.spec import SpecLimits
from infrastructure.settings import Settings
from infrastructure.tokens import token_digest
from tests.helpers import CLIENT_SPEC


def served_routes(routes, prefix: str = ""):
    for route in routes:
        if isinstance(route, Mount):
            yield from served_routes(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            for method in route.methods - {"HEAD"}:
                yield prefix + route.path, method.lower()


def references(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def test_document_lists_every_route_and_resolves_its_schemas() -> None:
    app = create_app(Settings(database_url="memory://"))
    with TestClient(app) as client:
        document = client.get("/openapi.json").json()
    documented = {(path, method) for path, operations in document["paths"].items() for method in operations}
    assert set(served_routes(app.routes)) == documented
    schemas = document["components"]["schemas"]
    for reference in references(document):
        assert reference.removeprefix("#/components/schemas/") in schemas
    assert "batch_sizes" in schemas["JobSpecFromClient"]["properties"]


def document_of(settings: Settings, token: str | None = None) -> dict:
    with TestClient(create_app(settings)) as client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return client.get("/openapi.json", headers=headers).json()


def security(document: dict, path: str, method: str) -> tuple[list, set[str]]:
    operation = document["paths"][path][method]
    return operation["security"], {code for code in ("401", "403") if code in operation["responses"]}


BEARER = [{"bearer": []}]


@pytest.mark.parametrize(
    ("settings", "token", "write", "read"),
    [
        (Settings(database_url="memory://"), None, ([], set()), ([], set())),
        (Settings(database_url="memory://", auth_token="w"), "w", (BEARER, {"401"}), ([], set())),
        (Settings(database_url="memory://", auth_token="w", auth_reads=True), "w", (BEARER, {"401"}), (BEARER, {"401"})),
        (Settings(database_url="memory://", auth_token="w", read_token="r"), "r", (BEARER, {"401", "403"}), (BEARER, {"401"})),
    ],
    ids=["no token", "write token", "write token for reads too", "read token"],
)
def test_the_document_says_which_operations_need_a_token_as_the_server_enforces(settings, token, write, read) -> None:
    document = document_of(settings, token)
    assert security(document, "/jobs", "post") == write
    assert security(document, "/jobs/batch_size", "get") == write
    assert security(document, "/v1/jobs/{job_id}", "get") == read
    assert security(document, "/metrics", "get") == read
    assert security(document, "/healthz", "get") == ([], set())
    with TestClient(create_app(settings)) as client:  # and the server does as it says
        assert (client.get("/jobs/batch_size", params={"job_id": "x"}).status_code == 401) == bool(write[0])
        assert (client.get("/v1/jobs").status_code == 401) == bool(read[0])


def test_with_scoped_tokens_every_job_operation_may_answer_403(tmp_path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"tokens": [{"name": "a", "sha256": token_digest("t"), "prefixes": ["a-"], "role": "write"}]}))
    document = document_of(Settings(database_url="memory://", tokens_file=str(tokens)), "t")
    for path, method in [("/jobs", "post"), ("/report", "post"), ("/v1/jobs/{job_id}", "get"), ("/v1/jobs/{job_id}/trials.csv", "get")]:
        assert security(document, path, method) == (BEARER, {"401", "403"}), path
    assert security(document, "/v1/jobs", "get") == (BEARER, {"401"})


def test_the_configured_caps_are_the_documented_bounds_and_the_servers() -> None:
    limits = SpecLimits(batch_sizes=4, num_pruning_rounds=3, window_size=7, max_epochs=50, mab_num_explorations=5, stop_window=9)
    settings = Settings(database_url="memory://", spec_limits=limits)
    properties = document_of(settings)["components"]["schemas"]["JobSpecFromClient"]["properties"]
    assert properties["batch_sizes"]["maxItems"] == 4
    with TestClient(create_app(settings)) as client:
        for name in ("num_pruning_rounds", "window_size", "max_epochs", "mab_num_explorations", "stop_window"):
            schema = next(item for item in properties[name].get("anyOf", [properties[name]]) if "maximum" in item)
            cap = getattr(limits, name)
            assert schema["maximum"] == cap, name
            at_cap = client.post("/jobs", json={**CLIENT_SPEC, "job_id": f"api-{name}-ok", name: cap})
            beyond = client.post("/jobs", json={**CLIENT_SPEC, "job_id": f"api-{name}-no", name: cap + 1})
            assert at_cap.status_code == 201, (name, at_cap.text)
            assert beyond.status_code == 422 and name in beyond.text, name


def test_every_documented_bound_of_a_job_spec_is_the_servers() -> None:
    """At each documented minimum or maximum the server accepts (or, for an exclusive bound,
    refuses), and one step beyond it refuses naming the field."""
    settings = Settings(database_url="memory://")
    properties = document_of(settings)["components"]["schemas"]["JobSpecFromClient"]["properties"]
    checked = 0
    with TestClient(create_app(settings)) as client:
        for name, field in properties.items():
            for schema in field.get("anyOf", [field]):
                if schema.get("type") not in ("integer", "number"):
                    continue
                step = 1 if schema["type"] == "integer" else 1e-6
                for key, inside, beyond in [
                    ("minimum", True, -step), ("maximum", True, step),
                    ("exclusiveMinimum", False, -step), ("exclusiveMaximum", False, step),
                ]:
                    if key not in schema or abs(schema[key]) > 1e9:  # beyond what a float steps past
                        continue
                    bound = schema[key]
                    spec = {**CLIENT_SPEC, "job_id": f"api-{checked}", "policy": "lsts"}
                    if name == "default_batch_size":
                        spec["batch_sizes"] = [bound if inside else bound + step, 64]
                    at = client.post("/jobs", json={**spec, name: bound})
                    past = client.post("/jobs", json={**spec, "job_id": f"api-{checked}-x", name: bound + beyond})
                    assert (at.status_code in (200, 201)) is inside, (name, key, bound, at.text)
                    assert past.status_code == 422 and name in past.text, (name, key, bound + beyond, past.text)
                    checked += 1
    assert checked >= 20  # every LSTS knob and spec field with a bound was tried
