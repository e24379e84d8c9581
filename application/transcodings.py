"""How domain value objects are stored inside events and snapshots (JSON)."""

from typing import Any

from eventsourcing.persistence import Transcoding

from domain.spec import JobSpec


class JobSpecAsDict(Transcoding):
    type = JobSpec
    name = "bso.JobSpec"

    def encode(self, obj: JobSpec) -> dict[str, Any]:
        return obj.to_record()

    def decode(self, data: dict[str, Any]) -> JobSpec:
        return JobSpec.from_record(data)


TRANSCODINGS: tuple[Transcoding, ...] = (JobSpecAsDict(),)
