"""Normalizer settings, read from ``CALLSTREAM_NORMALIZER_*`` environment variables.

Kafka itself (bootstrap servers, passthrough properties, topic names) comes from the shared
:class:`callstream.settings.Settings`; this class holds only what is the normalizer's own.
"""

from __future__ import annotations

import os
import socket
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from callstream.settings import CallstreamBaseSettings


def default_instance_id() -> str:
    """The pod name on Kubernetes (``HOSTNAME``; stable with a StatefulSet), else the host name."""
    return os.environ.get("HOSTNAME") or socket.gethostname() or "local"


class NormalizerSettings(CallstreamBaseSettings):
    """The normalizer's group, transaction, batching, lookup and dedupe settings."""

    model_config = SettingsConfigDict(env_prefix="CALLSTREAM_NORMALIZER_")

    group_id: str = Field("callstream-normalizer", description="Consumer group on the raw topic.")
    transactional_id_prefix: str = Field(
        "callstream-normalizer", description="transactional.id = <prefix>-<instance_id>."
    )
    instance_id: str = Field(
        default_factory=default_instance_id,
        description="Stable per instance (pod name): a restarted instance fences its zombie.",
    )
    naive_timezone: str = Field(
        "UTC", description="Zone of callback timestamps that carry none (IANA name)."
    )
    batch_max_records: int = Field(5000, ge=1, description="Records per transaction at most.")
    consume_batch_records: int = Field(
        1000,
        ge=1,
        description="Records per consume() call: a transaction takes several, so its first "
        "records are on their way to the broker while the next are transformed.",
    )
    commit_interval_ms: int = Field(
        100, ge=1, description="A transaction is committed at most this long after it began."
    )
    transaction_timeout_ms: int = Field(
        60_000, ge=1000, description="transaction.timeout.ms of the producer."
    )
    lookup_cache_size: int = Field(
        200_000, ge=1, description="message_id -> dispatch entries kept (LRU)."
    )
    lookup_wait_ms: int = Field(
        2000,
        ge=0,
        description="Longest wait for the dispatches reader to catch up on an unknown message_id.",
    )
    dedupe_window: int = Field(
        200_000, ge=0, description="Recent event ids remembered to drop repeated callbacks; 0=off."
    )
    static_membership: bool = Field(
        False,
        description="group.instance.id = the transactional id: a restarted instance takes its "
        "partitions back at once instead of after session.timeout.ms. Only with stable instance "
        "ids (StatefulSet): a stopped static member keeps its partitions until the timeout.",
    )
    create_topics: bool = Field(True, description="Create missing topics at start.")

    @property
    def transactional_id(self) -> str:
        return f"{self.transactional_id_prefix}-{self.instance_id}"

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.naive_timezone)

    @field_validator("naive_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value
