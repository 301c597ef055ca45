"""Pause on 401/404/405 (one prober, the rest wait) and the per-correlation-id locks."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from consumers.dispatcher.exceptions import PlatformUnavailableError
from consumers.dispatcher.keyed_locks import KeyedLocks
from consumers.dispatcher.pause import PlatformPause
from consumers.dispatcher.work import Work


class FakeWork:
    def __init__(self) -> None:
        self.task: asyncio.Task[Any] | None = None


def work() -> Work:
    return cast(Work, FakeWork())


async def test_one_prober_while_paused_others_wait_until_resumed() -> None:
    calls: list[str] = []
    pause = PlatformPause(lambda: calls.append("pause"), lambda: calls.append("resume"))
    a, b = work(), work()
    a.task = asyncio.current_task()
    assert await pause.gate(a) is False  # not paused: go on
    pause.enter(PlatformUnavailableError("no", http_status=401))
    pause.enter(PlatformUnavailableError("no", http_status=401))  # idempotent
    assert calls == ["pause"]
    assert await pause.gate(a) is True  # a becomes the prober
    waiter = asyncio.create_task(pause.gate(b))
    await asyncio.sleep(0.05)
    assert not waiter.done()  # b waits while a probes
    assert pause.leave() is False
    assert await asyncio.wait_for(waiter, 2) is False
    assert calls == ["pause", "resume"]


async def test_a_new_prober_takes_over_when_the_old_one_ends() -> None:
    pause = PlatformPause(lambda: None, lambda: None)
    a, b = work(), work()
    a.task = asyncio.create_task(asyncio.sleep(0))
    await a.task
    pause.enter(PlatformUnavailableError("no", http_status=404))
    assert await pause.gate(a) is True
    pause.released(a)
    assert await asyncio.wait_for(pause.gate(b), 2) is True


async def test_keyed_locks_serialize_one_id_and_forget_it() -> None:
    locks = KeyedLocks()
    order: list[str] = []

    async def hold(key: str, name: str, delay: float) -> None:
        async with locks.hold(key):
            order.append(f"{name}+")
            await asyncio.sleep(delay)
            order.append(f"{name}-")

    await asyncio.gather(hold("a", "1", 0.05), hold("a", "2", 0), hold("b", "3", 0))
    assert order.index("1-") < order.index("2+")  # same id: one after the other
    assert order.index("3+") < order.index("1-")  # other id: concurrently
    assert len(locks) == 0
