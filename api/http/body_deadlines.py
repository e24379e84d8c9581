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
from typing import Any

CHECK_SECONDS = 0.5

Task = asyncio.Task[Any]


class BodyDeadlines:
    def __init__(self) -> None:
        self._deadlines: dict[Task, float] = {}
        self._overdue: set[Task] = set()

    def begin(self, seconds: float) -> Task:
        """The current task starts reading a body that must arrive within ``seconds``."""
        task = asyncio.current_task()
        assert task is not None
        self._deadlines[task] = asyncio.get_running_loop().time() + seconds
        return task

    def overdue(self, task: Task) -> bool:
        """Whether the CancelledError ``task`` just met is the watchdog's; if so it is
        taken back, so that the task can answer (a 408) instead of being cancelled."""
        if task in self._overdue:
            task.uncancel()
            return True
        return False

    def end(self, task: Task) -> None:
        """The read is over, whatever its outcome: no cancellation can follow it."""
        self._deadlines.pop(task, None)
        self._overdue.discard(task)

    async def watch(self) -> None:
        """Cancel overdue reads, forever (the app's lifespan cancels this task)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            now = loop.time()
            for task, deadline in list(self._deadlines.items()):
                if deadline <= now and task not in self._overdue:
                    self._overdue.add(task)
                    task.cancel()
