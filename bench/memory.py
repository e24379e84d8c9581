"""Memory: the server's resident memory when fresh and after 1,000 jobs.

    python -m bench.memory --database sqlite --jobs 1000

Each job is registered and runs one trial (predict, a report per epoch, end trial),
so every job's aggregate has been loaded and cached once. The history-growth
benchmark prints the resident memory after its 10,000-trial run.
"""

import argparse

import httpx

from bench.common import (
    add_backend_flags,
    event_store,
    job_spec,
    machine,
    print_json,
    route_table,
    running_server,
    train_one_trial,
)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n\n")[0])
    add_backend_flags(parser)
    parser.add_argument("--jobs", type=int, default=1_000)
    args = parser.parse_args()
    with event_store(args.database) as database_url, running_server(database_url, args.workers) as server:
        fresh = server.resident_memory_bytes()
        routes = route_table()
        with httpx.Client(base_url=server.url, timeout=60.0) as http:
            for number in range(args.jobs):
                job_id = http.post("/jobs", json=job_spec("memory", max_epochs=10, seed=number)).json()["job_id"]
                train_one_trial(http, job_id, routes, epochs_to_target=3)
        loaded = server.resident_memory_bytes()
    errors = {route: latencies.errors for route, latencies in routes.items() if latencies.errors}
    print_json(
        {
            "benchmark": "memory",
            "database": args.database,
            "jobs": args.jobs,
            "machine": machine(),
            "server_rss_mib_fresh": round(fresh / 2**20, 1),
            "server_rss_mib_after_jobs": round(loaded / 2**20, 1),
            "per_job_kib": round((loaded - fresh) / args.jobs / 1024, 1),
            "errors": errors,
        }
    )


if __name__ == "__main__":
    main()
