"""Deadlines on reading request bodies, kept by one watchdog task per process.

A client that stops sending half-way must not hold its connection (and its task)
forever. ``asyncio.timeout`` per request would do, but each one puts a timer in the
event loop's heap, and under load the heap fills with cancelled timers that the loop
keeps sifting: 1.5% of the server's Python samples (py-spy) under the load benchmark.
Here a read only notes its deadline in a dict; the watchdog wakes every
``CHECK_SECONDS`` and cancels the reads past theirs, so a stalled read ends between
its timeout and ``CHECK_SECONDS`` later.
"""

import asyncio
from types import TracebackType
from typing import Any

CHECK_SECONDS = 0.5

Task = asyncio.Task[Any]


class BodyDeadlines:
    def __init__(self) -> None:
        self._deadlines: dict[Task, float] = {}
        self._overdue: set[Task] = set()  # cancelled by the watchdog, not yet told

    def within(self, seconds: float) -> "_Deadline":
        """``async with deadlines.within(s):`` raises TimeoutError if its body outlives
        ``s`` seconds, as ``asyncio.timeout(s)`` would."""
        return _Deadline(self, seconds)

    async def watch(self) -> None:
        """Cancel overdue reads, forever (the app's lifespan cancels this task)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            now = loop.time()
            for task, deadline in list(self._deadlines.items()):
                if deadline <= now:
                    del self._deadlines[task]
                    self._overdue.add(task)
                    task.cancel()


class _Deadline:
    __slots__ = ("_deadlines", "_seconds", "_task")

    def __init__(self, deadlines: BodyDeadlines, seconds: float) -> None:
        self._deadlines = deadlines
        self._seconds = seconds

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._deadlines._deadlines[task] = asyncio.get_running_loop().time() + self._seconds

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        deadlines, task = self._deadlines, self._task
        deadlines._deadlines.pop(task, None)
        if task in deadlines._overdue:
            deadlines._overdue.discard(task)
            if kind is asyncio.CancelledError:  # the watchdog's cancellation: take it back
                task.uncancel()
                raise TimeoutError from None
