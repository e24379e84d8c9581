"""One module per ``bso`` subcommand; each exposes ``register(subparsers)``."""
