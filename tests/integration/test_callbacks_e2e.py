"""End to end, everything real on loopback: the sandbox places calls and POSTs their callbacks
(a mix of outcomes, every documented irregularity on, signed) -> ``callstream gateway`` (a
subprocess, HMAC auth) -> calls.callbacks.raw -> the normalizer -> calls.events.

The calls are placed by POSTing to the sandbox, and their DispatchResults written to
calls.dispatches with the real codec as soon as the platform answered, as the dispatcher does
(the first callback comes 100-200 ms later). Then every callback the sandbox's
ledger says it delivered must be in calls.events exactly once (read_committed), with its
correlation id: also on the Trombone/Disconnected events, where the platform leaves it out.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from pydantic import SecretStr

from callstream.contracts import call_event_codec
from sandbox.app import build_app
from sandbox.client import SandboxClient
from sandbox.server import BackgroundServer
from sandbox.settings import SandboxSettings
from tests.integration.test_normalizer_support import (
    NormalizerTopics,
    dispatch_result,
    normalizer_settings,
    put_dispatches,
    read_all,
    running_normalizer,
    wait_for,
)
from tests.kafka_fixtures import NewTopicFactory, free_ports

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
ROOT = Path(__file__).resolve().parents[2]
CALLS = 40
SECRET = "e2e-webhook-secret"
TERMINAL_STATUSES = {"released", "rejected", "failed"}


@pytest.fixture
def topics(new_topic: NewTopicFactory) -> NormalizerTopics:
    return NormalizerTopics.create(new_topic)


@pytest.fixture
def gateway_url(kafka_bootstrap: str, topics: NormalizerTopics, tmp_path: Path) -> Iterator[str]:
    (port,) = free_ports(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSTREAM_")}
    env.update(topics.env())
    env.update(
        {
            "CALLSTREAM_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "CALLSTREAM_GATEWAY_HOST": "127.0.0.1",
            "CALLSTREAM_GATEWAY_PORT": str(port),
            "CALLSTREAM_GATEWAY_AUTH": "hmac",
            "CALLSTREAM_GATEWAY_HMAC_SECRET": SECRET,
            "CALLSTREAM_HTTP_HOST": "127.0.0.1",
            "CALLSTREAM_HTTP_PORT": "0",
            "CALLSTREAM_LOG_FORMAT": "json",
            "CALLSTREAM_LOG_LEVEL": "WARNING",
        }
    )
    log_path = tmp_path / "gateway.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "callstream", "gateway"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/callbacks"
    try:

        def answers_head() -> bool:
            assert proc.poll() is None, log_path.read_text(errors="replace")[-3000:]
            try:
                request = urllib.request.Request(url, method="HEAD")
                with urllib.request.urlopen(request, timeout=2) as response:
                    return bool(response.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        wait_for(answers_head, 60, "the gateway")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def platform() -> Iterator[tuple[str, SandboxClient]]:
    settings = SandboxSettings(  # type: ignore[call-arg]
        port=0,
        seed=20261129,
        callbacks=True,
        callback_delay_min_ms=100,
        callback_delay_max_ms=200,
        callback_retry_delay_seconds=0.5,
        webhook_secret=SecretStr(SECRET),
        duplicate_window_seconds=0,
    )
    server = BackgroundServer(lambda: build_app(settings)).start()
    try:
        yield server.url, SandboxClient(server.url)
    finally:
        server.stop()


def place_call(base_url: str, correlation_id: str, msisdn: str, notify_url: str) -> str:
    body = {
        "channel": "voice",
        "from": "+14155550100",
        "to": [{"msisdn": [msisdn], "correlationId": correlation_id}],
        "content": {"type": "media", "mediaId": "prompt-1"},
        "callbackData": f"cbd-{correlation_id}",
        "notifyUrl": notify_url,
    }
    request = urllib.request.Request(
        f"{base_url}/v2/messages",
        data=orjson.dumps(body),
        method="POST",
        headers={"Content-Type": "application/json", "key": "sandbox-key"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
        answer: dict[str, Any] = orjson.loads(response.read())
    return str(answer["messageId"])


def test_every_delivered_callback_becomes_exactly_one_event(
    kafka_bootstrap: str,
    topics: NormalizerTopics,
    group_id: str,
    gateway_url: str,
    platform: tuple[str, SandboxClient],
) -> None:
    base_url, client = platform
    settings = topics.settings(kafka_bootstrap)
    correlation_of: dict[str, str] = {}
    dispatcher = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    with running_normalizer(settings, normalizer_settings(group_id)) as running:
        wait_for(lambda: running.pipeline.readiness()[0], 60, "the normalizer")
        for i in range(CALLS):
            correlation_id = f"e2e-{group_id}-{i}"
            message_id = place_call(base_url, correlation_id, f"+1415555{i:04d}", gateway_url)
            correlation_of[message_id] = correlation_id
            put_dispatches(  # as the dispatcher writes it once the platform answered
                kafka_bootstrap,
                topics.dispatches,
                [dispatch_result(message_id, correlation_id, attributes={"campaign": "e2e"},
                                 callback_data=f"cbd-{correlation_id}")],
                dispatcher,
            )  # fmt: skip

        def calls_finished() -> bool:
            callbacks = client.ledger()["callbacks"]
            ended = {
                c["message_id"]
                for c in callbacks
                if c["deliveryStatus"].lower() in TERMINAL_STATUSES
            }
            settled = all(c["state"] != "pending" for c in callbacks)
            return settled and ended >= set(correlation_of)

        wait_for(calls_finished, 120, "every call's callbacks")
        ledger = [c for c in client.ledger()["callbacks"] if c["message_id"] in correlation_of]
        assert ledger, "the sandbox sent no callbacks"
        assert {c["state"] for c in ledger} == {"delivered"}  # the gateway took every one
        wait_for(
            lambda: len(read_all(kafka_bootstrap, topics.events, timeout=5)) >= len(ledger),
            120,
            f"{len(ledger)} events",
        )
        assert not running.errors
    codec = call_event_codec()
    events = [codec.decode(m.value()) for m in read_all(kafka_bootstrap, topics.events)]

    delivered = Counter((c["message_id"], c["deliveryStatus"], int(c["code"])) for c in ledger)
    seen = Counter((e["message_id"], e["platform_status"], e["platform_code"]) for e in events)
    assert seen == delivered  # each delivered callback exactly once, nothing else
    assert len({e["event_id"] for e in events}) == len(events)
    for event in events:
        assert event["correlation_id"] == correlation_of[event["message_id"]]
        assert event["callback_data"] == f"cbd-{event['correlation_id']}"
        assert event["attributes"] == {"campaign": "e2e"}
        assert event["msisdn"] is not None
        assert event["msisdn"].startswith("+1415555")
    # a real mix of outcomes went through, each call ending in exactly one terminal event
    terminal = Counter((e["event_type"], e["reason"]) for e in events if e["terminal"])
    assert sum(terminal.values()) == CALLS
    assert len(terminal) >= 3, terminal
    missing_ids = [
        c for c in ledger if "correlationid" not in c["body"]["deliveryInfoNotification"]
    ]
    assert missing_ids, "no callback without ids: the fill-in was not exercised"
    assert not read_all(kafka_bootstrap, topics.dlq)
