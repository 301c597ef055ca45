"""Creating callstream's topics when they are missing (idempotent; existing topics are untouched).

``calls.dispatches`` is compacted: it is keyed by correlation id and holds the latest result of
each call, which is what the dispatcher's dedupe state and the normalizer's lookup are rebuilt from.
"""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # re-exported at runtime, not declared

from callstream.exceptions import ConfigError
from callstream.kafka_config import admin_config
from callstream.settings import Settings

COMPACTED = {"cleanup.policy": "compact", "min.compaction.lag.ms": "3600000"}


def topic_specs(settings: Settings) -> dict[str, dict[str, str]]:
    """Topic name -> topic config for every topic callstream uses."""
    specs: dict[str, dict[str, str]] = {name: {} for name in settings.all_topics().values()}
    specs[settings.topic_dispatches] = dict(COMPACTED)
    return specs


def ensure_topics(
    settings: Settings,
    names: list[str] | None = None,
    *,
    partitions: int | None = None,
    timeout: float = 30.0,
) -> list[str]:
    """Create the named topics (default: all of callstream's) that do not exist yet.

    Returns the names created. Raises :class:`ConfigError` when the broker refuses.
    """
    specs = topic_specs(settings)
    wanted = names if names is not None else list(specs)
    admin = AdminClient(admin_config(settings))
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise ConfigError(f"cannot reach Kafka at {settings.kafka_bootstrap_servers}") from exc
    missing = [n for n in wanted if n not in existing]
    if not missing:
        return []
    new = [
        NewTopic(
            n,
            num_partitions=partitions or settings.topic_partitions,
            replication_factor=settings.topic_replication_factor,
            config=specs.get(n, {}),
        )
        for n in missing
    ]
    created: list[str] = []
    for name, future in admin.create_topics(new, operation_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
            created.append(name)
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise ConfigError(f"cannot create topic {name}: {exc}") from exc
    return created
