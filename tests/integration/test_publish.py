"""`callstream publish` and the Publisher API against the real local Kafka broker."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer

from callstream.contracts import call_request_codec, parse_call_request
from callstream.exceptions import ValidationError
from callstream.settings import Settings
from producers.publisher import Publisher

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples" / "intents.jsonl"


def read_all(bootstrap: str, topic: str, group: str, expected: int) -> list[Any]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    records: list[Any] = []
    try:
        for _ in range(60):  # bounded: at most ~60 s
            for msg in consumer.consume(num_messages=500, timeout=1.0):
                assert msg.error() is None, msg.error()
                records.append(msg)
            if len(records) >= expected:
                # one more short poll to catch anything beyond what was expected
                records.extend(m for m in consumer.consume(num_messages=500, timeout=1.0))
                break
    finally:
        consumer.close()
    return records


def test_publish_cli_samples(kafka_bootstrap: str, new_topic: Any, group_id: str) -> None:
    topic = new_topic("requests")
    env = {**os.environ, "CALLSTREAM_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    result = subprocess.run(
        [sys.executable, "-m", "callstream", "publish", "--topic", topic, str(SAMPLES)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr  # the samples ship invalid lines on purpose
    lines = [
        json.loads(line) if line.strip().startswith("{") and _is_json(line) else None
        for line in SAMPLES.read_text().splitlines()
    ]
    invalid_line_numbers = {
        int(m.group(1))
        for m in (re.match(r"line (\d+)\b.*: rejected: ", ln) for ln in result.stderr.splitlines())
        if m
    }
    assert invalid_line_numbers == {7, 8, 9, 10, 11, 12, 13}
    assert "invalid JSON" in result.stderr
    assert "msisdn: must be an E.164 number" in result.stderr
    assert "13 read, 6 published, 7 rejected, 0 failed" in result.stderr

    records = read_all(kafka_bootstrap, topic, group_id, expected=6)
    assert len(records) == 6
    decoded = [parse_call_request(m.value()) for m in records]
    for msg, request in zip(records, decoded, strict=True):
        assert msg.key().decode() == request["correlation_id"]
        assert dict(msg.headers())["content-type"] == b"application/vnd.apache.avro+binary"
    ids = {r["correlation_id"] for r in decoded}
    named = {line["correlation_id"] for line in lines[:6] if line and "correlation_id" in line}
    assert named <= ids and len(ids) == 6  # one sample has no id: one was generated
    seed = next(r for r in decoded if r["correlation_id"] == "sample-tts-seed-0001")
    assert seed["content"]["text"] == "Time for lunch"  # type: ignore[typeddict-item]


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def test_publisher_api(kafka_bootstrap: str, new_topic: Any, group_id: str) -> None:
    topic = new_topic("requests")
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap)
    publisher = Publisher(settings, topic=topic)
    receipt = publisher.publish(
        {
            "caller_id": "+14155550100",
            "msisdn": "+14155550123",
            "content": {"type": "media", "media_id": "prompt-1"},
        }
    )
    assert receipt.topic == topic and receipt.offset >= 0
    with pytest.raises(ValidationError) as info:
        publisher.publish({"msisdn": "nope"})
    assert {"msisdn", "caller_id", "content"} <= {e.field for e in info.value.errors}
    (msg,) = read_all(kafka_bootstrap, topic, group_id, expected=1)
    request = call_request_codec().decode(msg.value())
    assert request["correlation_id"] == receipt.correlation_id == msg.key().decode()
