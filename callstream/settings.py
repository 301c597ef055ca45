"""Settings shared by every callstream service, read from ``CALLSTREAM_*`` environment variables.

Service-specific settings (dispatcher, gateway, normalizer, sandbox) live beside each service
and follow the same rules: frozen, secrets as :class:`~pydantic.SecretStr`, a redacted printed form.

Any librdkafka property can be passed through as ``CALLSTREAM_KAFKA__<PROPERTY>``: the part after
``KAFKA__`` is lowercased and its underscores become dots, so
``CALLSTREAM_KAFKA__SECURITY_PROTOCOL=SASL_SSL`` sets ``security.protocol`` (librdkafka property
names contain no underscores, so the mapping is unambiguous).
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ENV_PREFIX = "CALLSTREAM_"
KAFKA_PASSTHROUGH_PREFIX = "CALLSTREAM_KAFKA__"

# Substrings of librdkafka property names whose values must never be printed.
_SECRET_MARKERS = ("password", "secret", "token", "key.pem", "private", "credential")


def kafka_property_name(env_suffix: str) -> str:
    """``SASL_MECHANISM`` (or ``SASL__MECHANISM``) -> ``sasl.mechanism``."""
    parts = [p for p in env_suffix.lower().replace("__", "_").split("_") if p]
    return ".".join(parts)


def is_secret_property(name: str) -> bool:
    lowered = name.lower()
    return any(marker in lowered for marker in _SECRET_MARKERS)


class _KafkaPassthroughSource(PydanticBaseSettingsSource):
    """Collects ``CALLSTREAM_KAFKA__*`` variables into the ``kafka_properties`` field."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ builds the whole mapping

    def __call__(self) -> dict[str, Any]:
        props = {
            kafka_property_name(name[len(KAFKA_PASSTHROUGH_PREFIX) :]): value
            for name, value in os.environ.items()
            if name.upper().startswith(KAFKA_PASSTHROUGH_PREFIX)
            and len(name) > len(KAFKA_PASSTHROUGH_PREFIX)
        }
        return {"kafka_properties": props} if props else {}


class CallstreamBaseSettings(BaseSettings):
    """Base of every settings class: frozen, environment first, redacted when printed."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        extra="ignore",
        case_sensitive=False,
    )

    def redacted(self) -> dict[str, Any]:
        """A printable form: secrets masked, librdkafka secret properties masked."""
        out: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                out[name] = "**********" if value.get_secret_value() else ""
            elif isinstance(value, dict):
                out[name] = {
                    k: ("**********" if is_secret_property(str(k)) else v) for k, v in value.items()
                }
            else:
                out[name] = value
        return out

    def __repr_args__(self) -> Any:
        return list(self.redacted().items())


class Settings(CallstreamBaseSettings):
    """What every service needs: Kafka, topic names, the schema registry, logging, health port."""

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka brokers (bootstrap.servers)."
    )
    kafka_properties: dict[str, str] = Field(
        default_factory=dict,
        description="Extra librdkafka properties from CALLSTREAM_KAFKA__<PROPERTY> variables.",
    )
    schema_registry_url: str | None = Field(
        None,
        description="Confluent-compatible schema registry; unset = Avro single-object encoding.",
    )

    topic_requests: str = "calls.requests"
    topic_requests_retry: str = "calls.requests.retry"
    topic_requests_dlq: str = "calls.requests.dlq"
    topic_dispatches: str = "calls.dispatches"
    topic_callbacks_raw: str = "calls.callbacks.raw"
    topic_callbacks_dlq: str = "calls.callbacks.dlq"
    topic_events: str = "calls.events"
    topic_partitions: int = Field(
        6, ge=1, description="Partitions for topics callstream creates when they are missing."
    )
    topic_replication_factor: int = Field(
        1, ge=1, description="Replication factor for topics callstream creates."
    )

    http_port: int = Field(9000, ge=0, le=65535, description="Health and metrics port.")
    http_host: str = Field("0.0.0.0", description="Address the health/metrics server binds.")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING, ERROR.")
    log_format: str = Field("auto", description="auto (JSON unless a terminal), json or console.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            _KafkaPassthroughSource(settings_cls),
            file_secret_settings,
        )

    def all_topics(self) -> dict[str, str]:
        return {
            "requests": self.topic_requests,
            "requests_retry": self.topic_requests_retry,
            "requests_dlq": self.topic_requests_dlq,
            "dispatches": self.topic_dispatches,
            "callbacks_raw": self.topic_callbacks_raw,
            "callbacks_dlq": self.topic_callbacks_dlq,
            "events": self.topic_events,
        }
