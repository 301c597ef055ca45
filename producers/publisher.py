"""Publishing call intents to ``calls.requests``: the Python API upstream services use.

An intent is a JSON-form CallRequest (a dict). :meth:`Publisher.prepare` fills what may be
omitted (``correlation_id``: a new UUID; ``created_at``: now), validates against the Avro schema
and the semantic rules, and raises :class:`~callstream.exceptions.ValidationError` naming every
failing field. :meth:`Publisher.publish` sends one and waits for the broker's acknowledgement;
:meth:`Publisher.send` queues one and reports through a callback (for bulk publishing).

The producer is idempotent with ``acks=all``; the key is the correlation id, so every intent of a
call lands on the same partition and the dispatcher's dedupe state for it lives in one place.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from confluent_kafka import KafkaError, Message, Producer

from callstream.contracts import (
    CallRequest,
    Codec,
    WireFormat,
    call_request_codec,
    validate_call_request,
    with_rule_errors,
)
from callstream.contracts.codecs import CONTENT_TYPES
from callstream.contracts.json_form import format_timestamp
from callstream.contracts.registry import SchemaRegistry
from callstream.exceptions import ConfigError, FieldError, ValidationError
from callstream.kafka_config import producer_config
from callstream.settings import Settings
from producers.exceptions import PublishError


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where the broker stored an intent."""

    correlation_id: str
    topic: str
    partition: int
    offset: int


DeliveryCallback = Callable[[Receipt | None, PublishError | None], None]


def with_defaults(intent: dict[str, Any]) -> dict[str, Any]:
    """A copy with ``correlation_id`` and ``created_at`` filled when absent."""
    filled = dict(intent)
    if filled.get("correlation_id") in (None, ""):
        filled["correlation_id"] = str(uuid.uuid4())
    if filled.get("created_at") is None:
        filled["created_at"] = format_timestamp(datetime.now(UTC))
    return filled


def prepare_intent(intent: Any, codec: Codec | None = None) -> CallRequest:
    """A JSON-form intent -> a valid CallRequest (defaults filled), or ValidationError."""
    if not isinstance(intent, dict):
        raise ValidationError(
            "invalid call request", (FieldError("(record)", "must be a JSON object"),)
        )
    try:
        record = (codec or call_request_codec()).from_obj(with_defaults(intent))
    except ValidationError as exc:
        raise with_rule_errors(exc) from None
    return validate_call_request(record)


class Publisher:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        wire_format: WireFormat = WireFormat.AVRO,
        topic: str | None = None,
        producer: Producer | None = None,
        codec: Codec | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.topic = topic or self.settings.topic_requests
        self.codec = codec or call_request_codec()
        self.wire_format = wire_format
        self._schema_id: int | None = None
        if wire_format is WireFormat.CONFLUENT:
            self._schema_id = self._register_schema()
        self._headers: list[tuple[str, str | bytes | None]] = [
            ("content-type", CONTENT_TYPES[wire_format].encode())
        ]
        self._producer = producer or Producer(
            producer_config(self.settings, client_id="callstream-publisher")
        )

    def _register_schema(self) -> int:
        if not self.settings.schema_registry_url:
            raise ConfigError("Confluent framing needs CALLSTREAM_SCHEMA_REGISTRY_URL")
        registry = SchemaRegistry(self.settings.schema_registry_url)
        schema_json = self.codec.schema.source.read_text(encoding="utf-8")
        return registry.register(f"{self.topic}-value", schema_json)

    def prepare(self, intent: Any) -> CallRequest:
        """Defaults filled, schema and semantic rules checked; ValidationError otherwise."""
        return prepare_intent(intent, self.codec)

    def encode(self, request: CallRequest) -> bytes:
        return self.codec.encode_as(request, self.wire_format, self._schema_id)

    # -- producing --------------------------------------------------------------------------
    def send(self, request: CallRequest, on_delivery: DeliveryCallback) -> None:
        """Queue one valid request; ``on_delivery`` runs from :meth:`poll` / :meth:`flush`."""
        cid = request["correlation_id"]

        def report(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                on_delivery(None, PublishError(f"{cid}: {err.str()}"))
            else:
                on_delivery(
                    Receipt(
                        cid,
                        cast(str, msg.topic()),
                        int(msg.partition() or 0),
                        int(msg.offset() or 0),
                    ),
                    None,
                )

        value = self.encode(request)
        while True:
            try:
                self._producer.produce(
                    self.topic,
                    value=value,
                    key=cid.encode(),
                    headers=self._headers,
                    on_delivery=report,
                )
                return
            except BufferError:
                self._producer.poll(0.1)  # local queue full: serve delivery reports, then retry

    def publish(self, intent: Any, timeout: float = 30.0) -> Receipt:
        """Validate, send and wait for the broker's acknowledgement of one intent."""
        request = self.prepare(intent)
        outcome: list[Receipt | PublishError] = []
        self.send(request, lambda r, e: outcome.append(e if e is not None else cast(Receipt, r)))
        remaining = self._producer.flush(timeout)
        if not outcome:
            raise PublishError(
                f"{request['correlation_id']}: not acknowledged within {timeout}s "
                f"({remaining} messages still queued)"
            )
        result = outcome[0]
        if isinstance(result, PublishError):
            raise result
        return result

    def poll(self, timeout: float = 0.0) -> int:
        return int(self._producer.poll(timeout))

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for outstanding deliveries; returns how many are still queued."""
        return int(self._producer.flush(timeout))
