"""A batch's CPU work alongside one statement (person.service.overlap): both run, in turns,
both results come back, and the statement has ended before an error of the work leaves; with
meanwhile(), the work only until the statement is done, the rest left to the caller. No I/O."""

import asyncio
from collections.abc import Generator

import pytest

from health_records.person.service import finish, meanwhile, overlap


async def test_the_statement_runs_between_slices_and_both_results_come_back() -> None:
    turns: list[str] = []

    async def statement() -> str:
        for step in range(3):
            turns.append(f"statement {step}")
            await asyncio.sleep(0)
        return "stored"

    def work() -> Generator[None, None, str]:
        for step in range(3):
            turns.append(f"work {step}")
            yield
        return "made"

    assert await overlap(statement(), work()) == ("stored", "made")
    assert turns == [
        "statement 0",
        "work 0",
        "statement 1",
        "work 1",
        "statement 2",
        "work 2",
    ]


async def test_a_failing_work_lets_the_statement_end_before_its_error_leaves() -> None:
    ended = asyncio.Event()

    async def statement() -> None:
        await asyncio.sleep(0.05)
        ended.set()

    def work() -> Generator[None, None, None]:
        yield
        raise ValueError("bad row")

    with pytest.raises(ValueError, match="bad row"):
        await overlap(statement(), work())
    assert ended.is_set()


async def test_a_failing_statement_fails_the_whole() -> None:
    async def statement() -> None:
        raise RuntimeError("unique violation")

    def work() -> Generator[None, None, int]:
        yield
        return 1

    with pytest.raises(RuntimeError, match="unique violation"):
        await overlap(statement(), work())


def test_finish_does_the_work_at_once() -> None:
    def work() -> Generator[None, None, list[int]]:
        made = []
        for step in range(3):
            made.append(step)
            yield
        return made

    assert finish(work()) == [0, 1, 2]


async def test_meanwhile_works_until_the_statement_is_done_and_leaves_the_rest() -> None:
    made: list[int] = []

    async def statement() -> str:
        await asyncio.sleep(0)
        return "stored"

    def work() -> Generator[None, None, None]:
        for step in range(10):
            made.append(step)
            yield

    slices = work()
    assert await meanwhile(statement(), slices) == ("stored", False)
    assert 0 < len(made) < 10
    assert finish(slices) is None and made == list(range(10))  # the rest, where it stopped


async def test_meanwhile_says_when_the_work_was_done_first() -> None:
    async def statement() -> str:
        await asyncio.sleep(0.01)
        return "stored"

    def work() -> Generator[None, None, None]:
        yield

    assert await meanwhile(statement(), work()) == ("stored", True)
