"""How domain value objects are stored inside events and snapshots (JSON)."""

from array import array
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


class ArrayAsList(Transcoding):
    """A job's reward histories (snapshots only: events carry plain numbers)."""

    type = array
    name = "array"

    def encode(self, obj: array) -> dict[str, Any]:
        return {"typecode": obj.typecode, "items": obj.tolist()}

    def decode(self, data: dict[str, Any]) -> array:
        return array(data["typecode"], data["items"])


TRANSCODINGS: tuple[Transcoding, ...] = (JobSpecAsDict(), ArrayAsList())
