"""One asyncio lock per key (correlation id), forgotten when nobody holds or waits for it.

Two records with the same correlation id are never dispatched at the same time: the second waits
for the first's result, then finds it in the dedupe state (DUPLICATE) instead of calling again.

The uncontended case (nearly every record) creates no lock: a key's entry is its holder count
plus a lock made only when a second record of the same key arrives.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class _Entry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.users = 1  # the holder and the waiters
        self.lock: asyncio.Lock | None = None  # made when a second user comes


class KeyedLocks:
    def __init__(self) -> None:
        self._locks: dict[str, _Entry] = {}

    def hold(self, key: str) -> _Hold:
        return _Hold(self, key)

    async def acquire(self, key: str) -> None:
        entry = self._locks.get(key)
        if entry is None:
            self._locks[key] = _Entry()  # held, nobody waits: no lock object
            return
        entry.users += 1
        lock = entry.lock
        if lock is None:
            # the holder took the key without a lock: make one held on its behalf (a free
            # lock is taken without yielding); the holder's release() hands it on
            lock = entry.lock = asyncio.Lock()
            await lock.acquire()
        try:
            await lock.acquire()
        except BaseException:
            self._drop(key)
            raise

    def release(self, key: str) -> None:
        lock = self._locks[key].lock
        if lock is not None:
            lock.release()
        self._drop(key)

    def _drop(self, key: str) -> None:
        entry = self._locks[key]
        entry.users -= 1
        if entry.users <= 0:
            del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)


class _Hold:
    __slots__ = ("_key", "_locks")

    def __init__(self, locks: KeyedLocks, key: str) -> None:
        self._locks = locks
        self._key = key

    async def __aenter__(self) -> None:
        await self._locks.acquire(self._key)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._locks.release(self._key)
