"""The state of one open transaction: where each partition's records began and end, and what
its commit will count. Rewinding after an abort needs no broker round trip: each partition is
sought back to the first offset the transaction consumed from it."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class OpenTransaction:
    started: float = field(default_factory=time.monotonic)
    first: dict[int, int] = field(default_factory=dict)  # partition -> first offset consumed
    next: dict[int, int] = field(default_factory=dict)  # partition -> offset to commit
    records: int = 0
    events: Counter[str] = field(default_factory=Counter)  # event type -> count
    dead_letters: Counter[str] = field(default_factory=Counter)  # stage -> count
    duplicates: int = 0
    hits: int = 0
    misses: int = 0
