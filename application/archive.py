"""Export a job's events as JSON Lines and import them into another event store.

A line is one stored event exactly as recorded: its stream id, version, stored
topic and stored state (the transcoded JSON object). Importing writes the same
records, so the imported job replays to the same state, with the same upcasting,
as the original; its UUID is kept, and its job id is claimed in the target
when that id is free there, in the same transaction as the events.
"""

import json
from typing import Any, Iterable, Iterator
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from application.audit import JobAudit
from application.catalog import REGISTERED_TOPIC
from application.service import BatchSizeOptimizer, JobAlreadyStoredError
from domain.errors import InvalidSpecError
from domain.job import Job


class ArchiveError(ValueError):
    """An export file that cannot be imported as it is."""


def export_lines(audit: JobAudit, reference: str) -> Iterator[str]:
    for record in audit.stored_events(reference):
        yield json.dumps(
            {
                "originator_id": str(record.originator_id),
                "originator_version": record.originator_version,
                "topic": record.topic,
                "state": json.loads(record.state),
            },
            separators=(",", ":"),
        )


def import_lines(app: BatchSizeOptimizer, lines: Iterable[str]) -> dict[str, Any]:
    """Write one exported job into ``app``'s store; returns what was imported."""
    records = [_stored_event(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    _check_stream(records)
    job_uuid = records[0].originator_id
    try:
        events = [app.mapper.to_domain_event(record) for record in records]
    except Exception as error:  # any decoding failure means the file is not ours
        raise ArchiveError(f"An event could not be decoded: {error}") from None
    registered = events[0]
    assert isinstance(registered, Job.Registered)
    try:  # an export is outside input: the job it describes must be one this server can run
        registered.spec.with_knobs({}, app.spec_limits)
    except InvalidSpecError as error:
        raise ArchiveError(f"The exported job cannot be imported here: {error}") from None
    deleted = any(isinstance(event, Job.Deleted) for event in events)
    try:
        name_claimed = app.import_job(records, registered.job_id, deleted)
    except JobAlreadyStoredError as error:
        raise ArchiveError(str(error)) from None
    return {
        "job_id": registered.job_id,
        "job_uuid": str(job_uuid),
        "events": len(records),
        "job_id_claimed": name_claimed,
    }


def _stored_event(line_number: int, line: str) -> StoredEvent:
    try:
        data = json.loads(line)
        return StoredEvent(
            originator_id=UUID(data["originator_id"]),
            originator_version=int(data["originator_version"]),
            topic=str(data["topic"]),
            state=json.dumps(data["state"], separators=(",", ":")).encode(),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise ArchiveError(f"Line {line_number} is not an exported event: {error!r}") from None


def _check_stream(records: list[StoredEvent]) -> None:
    if not records:
        raise ArchiveError("The export holds no events")
    if records[0].topic != REGISTERED_TOPIC:
        raise ArchiveError(f"The first event must be {REGISTERED_TOPIC}, not {records[0].topic}")
    for expected, record in enumerate(records, start=1):
        if record.originator_id != records[0].originator_id or record.originator_version != expected:
            raise ArchiveError(
                f"Event {expected} breaks the stream: expected job {records[0].originator_id} "
                f"version {expected}, found {record.originator_id} version {record.originator_version}"
            )
