"""The watchdog behind the body-read timeout: it cuts overdue reads and nothing else."""

import asyncio

import pytest

from api.http.body_deadlines import CHECK_SECONDS, BodyDeadlines


async def read(deadlines: BodyDeadlines, timeout: float, takes: float) -> str:
    """A body read that takes ``takes`` seconds, guarded as parse_body guards one."""
    try:
        async with deadlines.within(timeout):
            await asyncio.sleep(takes)
    except TimeoutError:
        return "timed out"
    return "read"


async def with_watchdog(deadlines: BodyDeadlines, *reads: "asyncio.Future[str]") -> list[str | BaseException]:
    watchdog = asyncio.create_task(deadlines.watch())
    try:
        return await asyncio.gather(*reads, return_exceptions=True)
    finally:
        watchdog.cancel()


def test_an_overdue_read_is_cut_within_its_timeout_and_one_check() -> None:
    async def scenario() -> tuple[list[str | BaseException], float]:
        deadlines = BodyDeadlines()
        loop = asyncio.get_running_loop()
        started = loop.time()
        results = await with_watchdog(
            deadlines,
            asyncio.ensure_future(read(deadlines, timeout=0.2, takes=30)),
            asyncio.ensure_future(read(deadlines, timeout=5, takes=0.1)),
        )
        return results, loop.time() - started

    results, elapsed = asyncio.run(scenario())
    assert results == ["timed out", "read"]
    assert 0.2 <= elapsed <= 0.2 + CHECK_SECONDS + 0.5, elapsed


def test_a_read_cancelled_by_anyone_else_stays_cancelled_and_a_finished_read_is_never_cut() -> None:
    async def scenario() -> tuple[list[str | BaseException], int]:
        deadlines = BodyDeadlines()
        outsider = asyncio.ensure_future(read(deadlines, timeout=30, takes=30))
        asyncio.get_running_loop().call_later(0.1, outsider.cancel)

        async def finished_then_waits() -> str:
            answer = await read(deadlines, timeout=0.1, takes=0)
            await asyncio.sleep(0.1 + 2 * CHECK_SECONDS)  # well past its deadline, no longer reading
            return answer

        results = await with_watchdog(deadlines, outsider, asyncio.ensure_future(finished_then_waits()))
        return results, len(deadlines._deadlines) + len(deadlines._overdue)

    results, left = asyncio.run(scenario())
    assert isinstance(results[0], asyncio.CancelledError)
    assert results[1] == "read"
    assert left == 0, "every read is forgotten when it ends"


@pytest.mark.parametrize("timeout", [0.0, -1.0])
def test_a_read_already_past_its_deadline_is_cut_at_the_next_check(timeout: float) -> None:
    async def scenario() -> list[str | BaseException]:
        deadlines = BodyDeadlines()
        return await with_watchdog(deadlines, asyncio.ensure_future(read(deadlines, timeout=timeout, takes=30)))

    assert asyncio.run(scenario()) == ["timed out"]
