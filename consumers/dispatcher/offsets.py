"""Commit watermarks for records processed concurrently (faust's rule).

Records of a partition are added in offset order and finish in any order; the committable
offset is the lowest unfinished one (or one past the highest seen when all are finished):
finished 34 35 36 40, unfinished 37 -> commit 37.
"""

from __future__ import annotations

from collections import deque


class PartitionOffsets:
    """Not thread-safe: owned by the event loop."""

    __slots__ = ("_done", "_pending", "committed", "next_offset")

    def __init__(self) -> None:
        self._pending: deque[int] = deque()  # added, in offset order (finished ones popped)
        self._done: set[int] = set()  # finished but not yet at the head
        self.next_offset: int | None = None  # one past the highest added
        self.committed: int | None = None  # last offset handed to commit

    def add(self, offset: int) -> None:
        if self.next_offset is not None and offset < self.next_offset:
            raise ValueError(f"offset {offset} added out of order (next is {self.next_offset})")
        self._pending.append(offset)
        self.next_offset = offset + 1

    def done(self, offset: int) -> None:
        self._done.add(offset)
        pending, done = self._pending, self._done
        while pending and pending[0] in done:
            done.discard(pending.popleft())

    def committable(self) -> int | None:
        """Offset to commit (the next record to read after a restart), None before any record."""
        if self._pending:
            return self._pending[0]
        return self.next_offset

    def to_commit(self) -> int | None:
        """The committable offset if it moved since the last call, else None."""
        offset = self.committable()
        if offset is None or offset == self.committed:
            return None
        self.committed = offset
        return offset

    @property
    def unfinished(self) -> int:
        return len(self._pending) - len(self._done)
