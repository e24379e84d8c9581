"""How domain value objects are stored inside events and snapshots (JSON)."""

import sys
from array import array
from base64 import b64decode, b64encode
from typing import Any

from eventsourcing.persistence import Transcoding

from domain.chunked_array import ChunkedArray
from domain.spec import JobSpec


class JobSpecAsDict(Transcoding):
    type = JobSpec
    name = "bso.JobSpec"

    def encode(self, obj: JobSpec) -> dict[str, Any]:
        return obj.to_record()

    def decode(self, data: dict[str, Any]) -> JobSpec:
        return JobSpec.from_record(data)


class ChunkedArrayAsBytes(Transcoding):
    """A job's per-trial arrays (snapshots only: events carry plain numbers), as their
    little-endian bytes in base64: exact for doubles, and encoded and decoded in one step
    instead of one JSON number at a time."""

    type = ChunkedArray
    name = "chunked_array"

    def encode(self, obj: ChunkedArray) -> dict[str, Any]:
        return {"typecode": obj.typecode, "little_endian": b64encode(_little_endian(obj.to_array())).decode("ascii")}

    def decode(self, data: dict[str, Any]) -> ChunkedArray:
        items = _little_endian(array(data["typecode"], b64decode(data["little_endian"])))
        return ChunkedArray(data["typecode"], items)


class ArrayAsList(Transcoding):
    """Reward histories in snapshots of Job version 3, read back for upcasting."""

    type = array
    name = "array"

    def encode(self, obj: array) -> dict[str, Any]:
        return {"typecode": obj.typecode, "items": obj.tolist()}

    def decode(self, data: dict[str, Any]) -> array:
        return array(data["typecode"], data["items"])


def _little_endian(items: array) -> array:
    """The array, swapped in place to little-endian byte order where the machine is big-endian
    (swapping is its own inverse, so this both writes and reads the stored order)."""
    if sys.byteorder == "big":
        items.byteswap()
    return items


TRANSCODINGS: tuple[Transcoding, ...] = (JobSpecAsDict(), ChunkedArrayAsBytes(), ArrayAsList())
