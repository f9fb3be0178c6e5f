"""Running many coroutines with at most N of them at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def gather_bounded(
    limit: int, fn: Callable[[T], Awaitable[R]], items: Iterable[T]
) -> list[R]:
    """`fn(item)` for every item, at most `limit` (at least 1) running at once; the
    results in the order of `items`."""
    sem = asyncio.Semaphore(max(1, limit))

    async def one(item: T) -> R:
        async with sem:
            return await fn(item)

    return list(await asyncio.gather(*(one(i) for i in items)))
