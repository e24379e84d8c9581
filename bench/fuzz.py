"""Schema fuzzing: schemathesis over a served bso's /openapi.json, all checks, many examples.

    python -m bench.fuzz --database sqlite --examples 200            # a random seed, printed
    python -m bench.fuzz --database postgres --examples 200 --seed 7

Starts ``bso serve`` on a fresh store (with a bearer token, so that the security
checks run), records a small job history, fuzzes every operation and prints one
JSON document: examples run, statuses seen per operation, failures. Exit status 1
when any check failed.
"""

import argparse
import random
import sys

from bench.common import add_backend_flags, event_store, machine, print_json
from tests.schema_fuzz import SERVER_ENV, fuzz, seed_history
from tests.servers import running_server
from tests.pgserver import temporary_data_dir


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.split("\n\n")[0])
    add_backend_flags(parser)
    parser.add_argument("--examples", type=int, default=200, help="examples per operation (default 200)")
    parser.add_argument("--seed", type=int, help="hypothesis seed (default: a random one, printed)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    logs = temporary_data_dir()
    with event_store(args.database) as database_url, running_server(database_url, logs, **SERVER_ENV) as server:
        seed_history(server.url)
        result = fuzz(server.url, args.examples, seed)
    print_json(
        {
            "benchmark": "fuzz",
            "database": args.database,
            "seed": seed,
            "examples_per_operation": args.examples,
            "examples": result.examples,
            "server_errors": sum(count for key, count in result.statuses.items() if key.endswith(" 500")),
            "failures": len(result.failures),
            "statuses": result.statuses,
            "failure_details": result.failures,
            "machine": machine(),
        }
    )
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
