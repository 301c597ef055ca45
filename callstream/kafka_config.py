"""The one place that turns :class:`~callstream.settings.Settings` into librdkafka configs.

Passthrough properties (``CALLSTREAM_KAFKA__*``) are applied last but never override what a
component requires for its guarantees (e.g. idempotence on producers that promise no duplicates);
callers pass those as ``required``.
"""

from __future__ import annotations

from typing import Any

from callstream.settings import Settings

KafkaConfig = dict[str, Any]


def _merge(base: KafkaConfig, settings: Settings, required: KafkaConfig | None) -> KafkaConfig:
    config = {"bootstrap.servers": settings.kafka_bootstrap_servers, **base}
    config.update(settings.kafka_properties)
    if required:
        config.update(required)
    return config


def producer_config(
    settings: Settings, *, client_id: str, required: KafkaConfig | None = None, **overrides: Any
) -> KafkaConfig:
    """An idempotent, acks=all producer (no duplicates, no reordering on retry)."""
    base: KafkaConfig = {
        "client.id": client_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        **overrides,
    }
    guarantees: KafkaConfig = {"enable.idempotence": True, "acks": "all"}
    return _merge(base, settings, {**guarantees, **(required or {})})


def transactional_producer_config(
    settings: Settings, *, client_id: str, transactional_id: str, **overrides: Any
) -> KafkaConfig:
    return producer_config(
        settings,
        client_id=client_id,
        required={"transactional.id": transactional_id},
        **overrides,
    )


def consumer_config(
    settings: Settings,
    *,
    group_id: str,
    client_id: str,
    required: KafkaConfig | None = None,
    **overrides: Any,
) -> KafkaConfig:
    """A consumer that never commits what it did not finish: offsets are stored explicitly."""
    base: KafkaConfig = {
        "group.id": group_id,
        "client.id": client_id,
        "enable.auto.offset.store": False,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "partition.assignment.strategy": "cooperative-sticky",
        **overrides,
    }
    return _merge(base, settings, required)


def admin_config(settings: Settings, **overrides: Any) -> KafkaConfig:
    return _merge(dict(overrides), settings, None)
