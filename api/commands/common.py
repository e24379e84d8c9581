"""Flags and settings shared by several subcommands."""

import argparse

from infrastructure.settings import Settings


def add_database_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        help="sqlite:///path/to/file.db (default sqlite:///bso.db), postgresql://user:pass@host:port/db, "
        "or memory:// (env BSO_DATABASE_URL)",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with every flag the user gave taking precedence."""
    return Settings.from_env().override(
        database_url=getattr(args, "database_url", None),
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        trial_lease_seconds=getattr(args, "trial_lease_seconds", None),
    )
