"""A throw-away PostgreSQL 15 server on a loopback port, for tests and CI.

``initdb`` refuses to run as root, so as root the server runs as the
``postgres`` user. Usable as a module (pytest fixture) or a script::

    python tests/pgserver.py start DATADIR [PORT]   # prints the database URL
    python tests/pgserver.py stop DATADIR
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

BIN_DIR = Path(os.environ.get("BSO_PG_BIN", "/usr/lib/postgresql/15/bin"))
DBNAME = "bso_test"


def binaries_present() -> bool:
    return all((BIN_DIR / tool).exists() for tool in ("initdb", "pg_ctl", "postgres"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


def _run(argv: list[str]) -> None:
    subprocess.run(_as_postgres(argv), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)


def start(data_dir: Path, port: int) -> str:
    """Create a cluster in ``data_dir``, start it on 127.0.0.1:port, return its URL."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(data_dir, "postgres", "postgres")
    _run([str(BIN_DIR / "initdb"), "-D", str(data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {data_dir} -c max_connections=200 -c fsync=on"
    _run([str(BIN_DIR / "pg_ctl"), "-D", str(data_dir), "-o", options, "-l", str(data_dir / "server.log"), "-w", "-t", "60", "start"])
    _run([str(BIN_DIR / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", DBNAME])
    return f"postgresql://postgres@127.0.0.1:{port}/{DBNAME}"


def stop(data_dir: Path) -> None:
    if (data_dir / "postmaster.pid").exists():
        _run([str(BIN_DIR / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "-t", "60", "stop"])


def temporary_data_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="bso-pg-"))


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "start":
        port = int(argv[2]) if len(argv) >= 3 else free_port()
        print(start(Path(argv[1]), port))
        return 0
    if len(argv) >= 2 and argv[0] == "stop":
        stop(Path(argv[1]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
