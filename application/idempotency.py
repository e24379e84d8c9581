"""Idempotent retries: a request repeated with the same ``Idempotency-Key`` is answered once.

The first request carrying a key stores its answer in a small aggregate whose id is
derived from (job, route, key), saved in the same atomic ``save`` as the job's
events: either both are committed or neither. A retry loads that aggregate and gets
the stored answer; nothing new is recorded. Two copies racing each other both try to
create version 1 of the same aggregate, so one loses with an IntegrityError and, on
its retry from a fresh load, finds the winner's answer. Being in the event log, keys
work across processes and restarts and are kept as long as the log.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.errors import DomainError

_NAMESPACE = uuid5(NAMESPACE_URL, "bso:idempotency-key")
MAX_KEY_LENGTH = 255


class IdempotencyKeyReusedError(DomainError):
    """The key was used before on this route and job with a different request body."""


@dataclass(frozen=True)
class RequestKey:
    """A client's idempotency key, scoped to one job and one route, with the request's fingerprint."""

    scope: str
    route: str
    key: str
    fingerprint: str

    @classmethod
    def of(cls, scope: str, route: str, key: str, request: Mapping[str, Any]) -> "RequestKey":
        canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return cls(scope, route, key, hashlib.sha256(canonical.encode()).hexdigest())

    @property
    def record_id(self) -> UUID:
        # NUL cannot occur in HTTP header values, so the parts cannot run into each other.
        return uuid5(_NAMESPACE, f"{self.scope}\0{self.route}\0{self.key}")


class IdempotentResponse(Aggregate):
    """The answer given to the first request that carried a key."""

    TOPIC = "bso.IdempotentResponse"

    class Recorded(Aggregate.Created):
        TOPIC = "bso.IdempotentResponse.Recorded"
        scope: str
        route: str
        key: str
        fingerprint: str
        response: Any

    class Created(Aggregate.Created):
        """Unused: the library requires an explicit topic for this inherited name too."""

        TOPIC = "bso.IdempotentResponse.Created"

    def __init__(self, scope: str, route: str, key: str, fingerprint: str, response: Any) -> None:
        self.scope = scope
        self.route = route
        self.key = key
        self.fingerprint = fingerprint
        self.response = response

    @classmethod
    def record(cls, request: RequestKey, response: Any, now: datetime) -> "IdempotentResponse":
        """``response`` must be JSON primitives (it is an event payload)."""
        return cls._create(
            cls.Recorded,
            id=request.record_id,
            scope=request.scope,
            route=request.route,
            key=request.key,
            fingerprint=request.fingerprint,
            response=response,
            timestamp=now,
        )

    def answer(self, request: RequestKey) -> Any:
        """The stored response, if ``request`` is the same request again."""
        if request.fingerprint != self.fingerprint:
            raise IdempotencyKeyReusedError(
                f"Idempotency-Key {request.key!r} was already used on {request.route} for job "
                f"{request.scope} with a different request body; use a new key for a new request."
            )
        return self.response
