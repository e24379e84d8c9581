"""The OpenAPI document covers every route and resolves every schema it names."""

from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from api.http.app import create_app
from infrastructure.settings import Settings


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
