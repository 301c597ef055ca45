"""One consumed record on its way to a result, and the per-partition bookkeeping around it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from confluent_kafka import Message

from callstream.headers import CONTENT_TYPE, header_str
from consumers.dispatcher.offsets import PartitionOffsets
from consumers.dispatcher.results import RetryState, Source, retry_state

Phase = Literal["wait", "http", "output"]


@dataclass(eq=False, slots=True)
class Work:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] | None
    timestamp_ms: int | None
    retry: RetryState
    source: Source
    attempts: int
    failures: int
    consumed_at: float = field(default_factory=time.monotonic)
    throttles: int = 0
    ambiguous: bool = False  # an earlier attempt may have reached the platform
    phase: Phase = "wait"
    task: asyncio.Task[None] | None = None

    @classmethod
    def from_message(cls, msg: Message) -> Work:
        topic, partition, offset = (
            str(msg.topic()),
            int(msg.partition() or 0),
            int(msg.offset() or 0),
        )
        raw_headers: Any = msg.headers()
        headers = [(str(k), v if isinstance(v, bytes) else b"") for k, v in raw_headers or []]
        retry = retry_state(headers, topic, partition, offset)
        _, ts = msg.timestamp()
        value = msg.value()
        return cls(
            topic=topic,
            partition=partition,
            offset=offset,
            key=msg.key(),
            value=value if isinstance(value, bytes) else b"",
            headers=headers or None,
            timestamp_ms=ts if ts and ts > 0 else None,
            retry=retry,
            source=retry.source or Source(topic, partition, offset),
            attempts=retry.attempts,
            failures=retry.failures,
        )

    @property
    def content_type(self) -> str | None:
        return header_str(self.headers, CONTENT_TYPE)

    def record_time(self) -> datetime:
        if self.timestamp_ms is not None:
            return datetime.fromtimestamp(self.timestamp_ms / 1000, tz=UTC)
        return datetime.now(UTC)


@dataclass(eq=False, slots=True)
class PartitionState:
    offsets: PartitionOffsets = field(default_factory=PartitionOffsets)
    works: set[Work] = field(default_factory=set)
    buffer_paused: bool = False
