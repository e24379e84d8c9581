"""The installed version of this distribution, for ``bso --version`` and the OpenAPI document."""

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "bso-server"  # the name on the package index; the command stays `bso`


def package_version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"
