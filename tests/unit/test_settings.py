from __future__ import annotations

import pytest
from pydantic import ValidationError as PydanticValidationError

from callstream.kafka_config import consumer_config, producer_config
from callstream.masking import mask_msisdn
from callstream.settings import Settings, kafka_property_name


def test_defaults() -> None:
    s = Settings()
    assert s.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert s.topic_requests == "calls.requests"
    assert s.topic_dispatches == "calls.dispatches"


def test_environment_and_passthrough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLSTREAM_KAFKA_BOOTSTRAP_SERVERS", "k1:9093,k2:9093")
    monkeypatch.setenv("CALLSTREAM_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CALLSTREAM_KAFKA__SASL__MECHANISM", "PLAIN")
    monkeypatch.setenv("CALLSTREAM_KAFKA__SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("CALLSTREAM_TOPIC_EVENTS", "prod.calls.events")
    s = Settings()
    assert s.kafka_bootstrap_servers == "k1:9093,k2:9093"
    assert s.topic_events == "prod.calls.events"
    assert s.kafka_properties == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.password": "hunter2",
    }
    config = producer_config(s, client_id="t", **{"enable.idempotence": False})
    assert config["bootstrap.servers"] == "k1:9093,k2:9093"
    assert config["security.protocol"] == "SASL_SSL"
    assert config["enable.idempotence"] is True, "guarantees are not overridable"
    assert config["acks"] == "all"
    consumer = consumer_config(s, group_id="g", client_id="c")
    assert consumer["enable.auto.offset.store"] is False
    # the printed forms never show a secret
    assert "hunter2" not in repr(s)
    assert "hunter2" not in str(s.redacted())


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(PydanticValidationError):
        s.topic_events = "x"  # type: ignore[misc]


def test_kafka_property_name() -> None:
    assert kafka_property_name("SSL_CA_LOCATION") == "ssl.ca.location"
    assert kafka_property_name("SASL__OAUTHBEARER__CLIENT__ID") == "sasl.oauthbearer.client.id"


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+14155550123", "+141******23"),
        ("447700900123", "447*******23"),
        ("+123", "+***"),
        (None, None),
    ],
)
def test_mask_msisdn(number: str | None, masked: str | None) -> None:
    assert mask_msisdn(number) == masked
