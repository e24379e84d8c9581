"""The edge: the Starlette HTTP API and the ``bso`` command line."""
