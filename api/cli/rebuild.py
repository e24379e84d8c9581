"""``bso rebuild-views``: fold every job's events afresh into the trial views' read model."""

import argparse
import sys

from api.cli.shared import add_database_flag, add_progress_flag, opened_audit, progress_for


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "rebuild-views",
        help="rebuild the trial views kept beside the events (after an upgrade, or to check them)",
        description="Fold every job's events afresh into the trial views' read model, which makes "
        "the first read of a long job fast after a restart. Jobs stored before the read model "
        "existed need it once; a view is never wrong without it, only slower to read. Run it "
        "while no server writes: a job written meanwhile is read from its events until the "
        "next rebuild.",
    )
    add_database_flag(parser)
    add_progress_flag(parser)
    parser.set_defaults(handler=rebuild_views)


def rebuild_views(args: argparse.Namespace) -> int:
    with opened_audit(args, create=True) as audit:
        if audit.app.trial_views is None:
            print("bso rebuild-views: this store keeps no trial views (memory://)", file=sys.stderr)
            return 2
        entries, _ = audit.catalog.page("", 0, None)
        done = audit.app.rebuild_trial_views([entry.job_uuid for entry in entries], progress_for(args, "rebuild", "job"))
    print(f"bso rebuild-views: trial views of {done} jobs rebuilt", file=sys.stderr)
    return 0
