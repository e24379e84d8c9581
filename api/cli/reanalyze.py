"""``bso reanalyze``: replay a job's history under other knobs; nothing is written."""

import argparse
import sys
from typing import Any, Callable

from api.cli.shared import (
    add_database_flag,
    add_format_flag,
    add_progress_flag,
    add_wide_flag,
    guarded,
    opened_audit,
    positive,
    print_csv,
    print_json,
    print_table,
    progress_for,
)
from api.cli.terminal import duration, energy, knob, wrapped
from application.reanalysis import reanalyze
from domain.errors import InvalidSpecError
from domain.spec import KNOBS, POLICIES, knob_overrides


def _optional(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        return None if text.lower() == "none" else kind(text)

    return parse


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "reanalyze",
        help="what the policy would have done with other knobs (read-only)",
        description="Replay a job's recorded history under other knobs and compare decisions, "
        "energy, time and cost with what actually happened. Unset knobs keep the job's values.",
    )
    parser.add_argument("job_id", help="client job id (latest incarnation) or job UUID")
    for setting in KNOBS:
        flag = "--" + setting.name.replace("_", "-")
        if setting.type is bool:  # --skip-up or --no-skip-up; neither: as recorded
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=setting.help)
        elif setting.name == "policy":  # a name argparse can check and list
            parser.add_argument(flag, choices=POLICIES, help=setting.help)
        elif setting.null_means is None:
            parser.add_argument(flag, type=setting.type, help=setting.help)
        else:  # "none" is a value of its own: absent and "none" must stay apart
            help_text = f"{setting.help}; 'none': {setting.null_means}"
            parser.add_argument(flag, type=_optional(setting.type), default=argparse.SUPPRESS, help=help_text)
    parser.add_argument("--resample-seed", type=int, default=0, help="seed for drawing recorded runs of other sizes (default 0)")
    add_format_flag(parser)  # JSON is the full report; CSV the table of trials, every one
    parser.add_argument(
        "--limit", type=positive, default=SHOWN_TRIALS, help=f"trials in the table, from the first (default {SHOWN_TRIALS})"
    )
    add_progress_flag(parser)
    add_wide_flag(parser)
    add_database_flag(parser)
    parser.set_defaults(handler=lambda args: guarded(run, args))


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    given = {setting.name: getattr(args, setting.name) for setting in KNOBS if hasattr(args, setting.name)}
    return knob_overrides(given)


def run(args: argparse.Namespace) -> int:
    with opened_audit(args) as audit:
        events = audit.domain_events(args.job_id)
        try:
            report = reanalyze(
                events, overrides_from(args), args.resample_seed, progress_for(args, "reanalyze"), audit.app.spec_limits
            )
        except InvalidSpecError as error:
            print(f"bso reanalyze: {error}", file=sys.stderr)
            return 2
    if args.format == "json":
        print_json(report)
    elif args.format == "csv":
        rows = trial_rows(report["trials"])
        print_csv(rows, list(rows[0]) if rows else ["trial"])
    else:
        print_report(report, args.limit, args.wide)
    return 0


SHOWN_TRIALS = 20


def print_report(report: dict[str, Any], limit: int = SHOWN_TRIALS, wide: bool = False) -> None:
    print(wrapped(f"job {report['job_id']} ({report['job_uuid']})", wide))
    knobs = report["knobs"]
    changed = {k: (knobs["actual"][k], v) for k, v in knobs["counterfactual"].items() if knobs["actual"][k] != v}
    print(wrapped("knobs: " + (", ".join(f"{k} {knob(a)} -> {knob(c)}" for k, (a, c) in changed.items()) or "as recorded"), wide))
    if report["halted"]:
        print(f"counterfactual halted: {report['halted']}")
    print()
    rows = trial_rows(report["trials"][:limit])
    print_table(
        rows, list(rows[0]) if rows else ["trial"], {"actual_cost": energy, "cf_cost": energy}, wide,
        whole=["trial"], droppable=["cf_data", "changed"],
    )
    if len(rows) < len(report["trials"]):
        print(f"(the first {len(rows)} of {len(report['trials'])} trials: --limit {len(report['trials'])} for all)")
    summary = report["summary"]
    print()
    print_table(
        [{"": side, **{k: summary[side][k] for k in ("trials", "energy", "time", "cost")}} for side in ("actual", "counterfactual")],
        ["", "trials", "energy", "time", "cost"],
        {"energy": energy, "time": duration, "cost": energy},
        wide,
    )
    counterfactual = summary["counterfactual"]
    print(wrapped(
        f"both sides priced alike: eta_knob {counterfactual['eta_knob']}, max_power {counterfactual['max_power']} W",
        wide,
    ))
    if not counterfactual["complete"]:
        print(wrapped(
            "counterfactual totals are lower bounds: unknown beyond the recorded epochs "
            f"{trial_numbers(counterfactual['unknown_trials'])}, no data {trial_numbers(counterfactual['no_data_trials'])}, "
            f"not simulated {trial_numbers(counterfactual['not_simulated_trials'])}",
            wide,
        ))
    print(f"batch size changes: {summary['batch_size_changes']}, decision changes: {summary['decision_changes']}")


def trial_rows(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per trial: what happened and what would have, side by side."""
    rows = []
    for trial in trials:
        actual, counterfactual = trial["actual"], trial["counterfactual"] or {}
        rows.append(
            {
                "trial": trial["number"],
                "actual_bs": actual["batch_size"],
                "actual_stop": f"{actual['stop_reason'] or actual['status']}@{actual['epochs']}",
                "actual_cost": actual["cost"],
                "cf_bs": counterfactual.get("batch_size"),
                "cf_data": counterfactual.get("data", "not simulated"),
                "cf_stop": _counterfactual_stop(counterfactual),
                "cf_cost": counterfactual.get("cost"),
                "changed": ",".join(trial["changed"]),
            }
        )
    return rows


def _counterfactual_stop(counterfactual: dict[str, Any]) -> str:
    if not counterfactual:
        return "-"
    if counterfactual["outcome"] == "unknown":
        return f"unknown beyond epoch {counterfactual['unknown_beyond_epoch']}"
    return f"{counterfactual['stop_reason'] or counterfactual['outcome']}@{counterfactual['epochs']}"


def trial_numbers(numbers: list[int], shown: int = 6) -> str:
    """A list of trial numbers short enough for one line: the first few and how many."""
    if not numbers:
        return "none"
    if len(numbers) <= shown:
        return ", ".join(map(str, numbers))
    return f"{', '.join(map(str, numbers[:shown]))} ... ({len(numbers)} trials)"
