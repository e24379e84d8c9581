"""JobName: which Job aggregate currently answers to a client-visible job id.

A deleted job keeps its history; registering its id again claims the name for a
fresh Job aggregate. The name's stream is the single arbiter when two servers
register the same id at once: only one claim can append the next version.
"""

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

_NAMESPACE = uuid5(NAMESPACE_URL, "bso:job-name")


def job_name_id(job_id: str) -> UUID:
    return uuid5(_NAMESPACE, job_id)


class JobName(Aggregate):
    TOPIC = "bso.JobName"

    class Created(Aggregate.Created):
        TOPIC = "bso.JobName.Created"
        job_id: str
        job_uuid: str

    class Reclaimed(Aggregate.Event):
        TOPIC = "bso.JobName.Reclaimed"
        job_uuid: str

        def apply(self, name: "JobName") -> None:
            name.current = self.job_uuid
            name.incarnations.append(self.job_uuid)

    class Released(Aggregate.Event):
        TOPIC = "bso.JobName.Released"

        def apply(self, name: "JobName") -> None:
            name.current = None

    @staticmethod
    def create_id(job_id: str) -> UUID:
        return job_name_id(job_id)

    def __init__(self, job_id: str, job_uuid: str) -> None:
        self.job_id = job_id
        self.current: str | None = job_uuid
        self.incarnations: list[str] = [job_uuid]

    @classmethod
    def claim(cls, job_id: str, job_uuid: str, now: datetime) -> "JobName":
        return cls._create(cls.Created, job_id=job_id, job_uuid=job_uuid, timestamp=now)

    def reclaim(self, job_uuid: str, now: datetime) -> None:
        self.trigger_event(self.Reclaimed, job_uuid=job_uuid, timestamp=now)

    def release(self, now: datetime) -> None:
        self.trigger_event(self.Released, timestamp=now)
