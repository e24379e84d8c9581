"""Errors raised by domain commands; the API translates them to HTTP statuses."""


class DomainError(Exception):
    """Base class: a command that cannot be carried out in the current state."""


class BadOperationError(DomainError):
    """The request makes no sense for this job (e.g. a report for a trial never dispatched)."""


class UnknownJobError(BadOperationError):
    """No live job has this id (never registered, or deleted)."""


class UnknownTrialError(DomainError):
    """The job has no trial with this number and batch size."""


class SpecMismatchError(DomainError):
    """A job id is registered again with a different specification."""


class NoConvergedBatchSizeError(DomainError):
    """A pruning round ended with no batch size that reached the target."""

    def __init__(self, round_number: int, candidates: list[int]) -> None:
        self.round_number = round_number
        self.candidates = candidates
        super().__init__(
            f"Pruning round {round_number + 1} ended without any batch size reaching the "
            f"target metric (candidates: {candidates}). Register a new job with a reachable "
            "target_metric, a larger max_epochs, or other batch_sizes; this job stays "
            "readable for audit."
        )


class InvalidSpecError(DomainError, ValueError):
    """A job specification (or a reanalysis knob) that no job can have; names the field at fault."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"{field}: {problem}" if not problem.startswith(field) else problem)


class InvalidReportError(DomainError):
    """An epoch report with a value no training run can have; names the field at fault."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"{field}: {problem}")


class TrialAbandonedError(DomainError):
    """A report arrived for a trial that was already ended or expired."""
