"""The HTTP interface: Zeus-compatible routes, /v1 reads and audit, metrics, OpenAPI."""
