"""hc_common.aio.gather_settled: every awaitable has finished before an error leaves."""

import asyncio

import pytest

from hc_common.aio import gather_settled


async def test_results_in_order() -> None:
    async def value(n: int, delay: float) -> int:
        await asyncio.sleep(delay)
        return n

    assert await gather_settled(value(1, 0.02), value(2, 0)) == [1, 2]


async def test_a_failure_leaves_once_the_other_has_finished() -> None:
    finished: list[str] = []

    async def fails() -> int:
        raise ValueError("the first half")

    async def slow() -> int:
        await asyncio.sleep(0.05)
        finished.append("slow")
        return 2

    with pytest.raises(ValueError, match="the first half"):
        await gather_settled(fails(), slow())
    assert finished == ["slow"]
