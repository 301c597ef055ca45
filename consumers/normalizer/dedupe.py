"""A bounded window of recently emitted event ids, transactional like the output it guards.

Ids of the open transaction are *staged*: seen by :meth:`DedupeWindow.seen` (a duplicate inside
one batch is dropped too) but merged into the window only on :meth:`commit`. :meth:`abort` drops
them, because an aborted transaction's records are consumed again and must not then be mistaken
for duplicates of themselves (that would lose events).

The window forgets the oldest ids beyond ``capacity``. It lives in memory and is rebuilt from the
tail of ``calls.events`` when the normalizer starts and when it is assigned new partitions
(:func:`consumers.normalizer.event_tail.read_recent_event_ids`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class DedupeWindow:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: set[str] = set()
        self._order: deque[str] = deque()
        self._staged: set[str] = set()

    def __len__(self) -> int:
        return len(self._ids)

    def seen(self, event_id: str) -> bool:
        """True if the id was emitted (committed or staged); else stage it and return False."""
        if self.capacity <= 0:
            return False
        if event_id in self._ids or event_id in self._staged:
            return True
        self._staged.add(event_id)
        return False

    def commit(self) -> None:
        self.remember(self._staged)
        self._staged = set()

    def abort(self) -> None:
        self._staged = set()

    def remember(self, event_ids: Iterable[str]) -> None:
        """Add committed ids (also used to seed the window from calls.events)."""
        if self.capacity <= 0:
            return
        ids, order = self._ids, self._order
        for event_id in event_ids:
            if event_id not in ids:
                ids.add(event_id)
                order.append(event_id)
        while len(order) > self.capacity:
            ids.discard(order.popleft())
