"""``make demo``: the whole pipeline on this machine, with sample calls flowing.

Starts the sandbox platform, the gateway, the normalizer and the dispatcher as real
``callstream`` processes against the local Kafka broker (``make kafka-up``), publishes
``samples/intents.jsonl`` plus a batch of generated intents, prints the canonical events from
``calls.events`` (read_committed) as they arrive, and stops when every published call has ended
(or after ``--seconds``). Kafka is left running (``make kafka-down`` stops it).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from rich.console import Console
from rich.table import Table

from callstream.contracts import call_event_codec
from callstream.exceptions import ContractError
from callstream.masking import mask_msisdn
from callstream.settings import Settings
from callstream.topics import ensure_topics
from producers.publisher import prepare_intent

ROOT = Path(__file__).resolve().parents[1]
SANDBOX_PORT, GATEWAY_PORT = 8089, 8080
HEALTH_PORTS = {"sandbox": 9010, "gateway": 9011, "normalizer": 9012, "dispatcher": 9013}
SERVICE_KEY = "demo-service-key"
WEBHOOK_SECRET = "demo-webhook-secret"  # noqa: S105  (a local demo value, not a credential)

console = Console(width=None if sys.stdout.isatty() else 160)


def service_env(bootstrap: str) -> dict[str, str]:
    return {
        **os.environ,
        "CALLSTREAM_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CALLSTREAM_LOG_FORMAT": "json",
        # sandbox: the platform stand-in, signing callbacks like the platform does
        "CALLSTREAM_SANDBOX_PORT": str(SANDBOX_PORT),
        "CALLSTREAM_SANDBOX_SERVICE_KEY": SERVICE_KEY,
        "CALLSTREAM_SANDBOX_SEED": "7",
        "CALLSTREAM_SANDBOX_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "CALLSTREAM_SANDBOX_CALLBACK_DELAY_MIN_MS": "200",
        "CALLSTREAM_SANDBOX_CALLBACK_DELAY_MAX_MS": "900",
        "CALLSTREAM_SANDBOX_CALLBACK_RETRY_DELAY_SECONDS": "2",
        # gateway: checks the signature
        "CALLSTREAM_GATEWAY_HOST": "127.0.0.1",
        "CALLSTREAM_GATEWAY_PORT": str(GATEWAY_PORT),
        "CALLSTREAM_GATEWAY_AUTH": "hmac",
        "CALLSTREAM_GATEWAY_HMAC_SECRET": WEBHOOK_SECRET,
        # dispatcher: calls the sandbox, callbacks go to the gateway
        "CALLSTREAM_PLATFORM_URL": f"http://127.0.0.1:{SANDBOX_PORT}",
        "CALLSTREAM_PLATFORM_SERVICE_KEY": SERVICE_KEY,
        "CALLSTREAM_NOTIFY_URL": f"http://127.0.0.1:{GATEWAY_PORT}/callbacks",
        "CALLSTREAM_DISPATCH_RATE": "50",
        "CALLSTREAM_HTTP_HOST": "127.0.0.1",
    }


def start(name: str, args: list[str], env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    log = (logs / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "callstream", *args],
        env={**env, "CALLSTREAM_HTTP_PORT": str(HEALTH_PORTS[name])},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    console.print(f"started {name} (pid {proc.pid}, log {logs / f'{name}.log'})")
    return proc


def wait_ready(name: str, url: str, deadline: float, procs: dict[str, Any]) -> None:
    while time.monotonic() < deadline:
        if procs[name].poll() is not None:
            raise SystemExit(f"{name} exited with {procs[name].returncode}; see its log")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url, timeout=1) as response,  # noqa: S310  (loopback)
        ):
            if response.status == 200:
                return
        time.sleep(0.3)
    raise SystemExit(f"{name} not ready at {url}")


def intents(run: str, count: int) -> list[dict[str, Any]]:
    samples = []
    for line in (ROOT / "samples" / "intents.jsonl").read_text().splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            samples.append(line)  # the malformed sample: the publisher reports it
            continue
        if isinstance(obj, dict):  # unique ids per run, so a second demo run calls again
            cid = str(obj.get("correlation_id") or f"sample-{len(samples)}")
            obj["correlation_id"] = cid if len(cid) > 50 else f"{cid[:40]}-{run}"
        samples.append(obj)
    for i in range(count):
        samples.append(
            {
                "correlation_id": f"demo-{run}-{i:04d}",
                "caller_id": "+14155550100",
                "msisdn": f"+1415555{1000 + i:04d}",
                "content": {"type": "media", "media_id": "prompt-appointment-reminder"}
                if i % 2
                else {
                    "type": "tts",
                    "text": f"Hello, this is reminder number {i}.",
                    "language": "en-US",
                    "voice": "GuyNeural",
                    "region": "eastus",
                },
                "callback_data": f"demo-{i}",
                "attributes": {"campaign": "demo", "run": run},
            }
        )
    return samples


def _valid(item: Any) -> bool:
    try:
        prepare_intent(item)
    except ContractError:
        return False
    return True


def publish(items: list[Any], env: dict[str, str]) -> None:
    lines = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in items) + "\n"
    result = subprocess.run(
        [sys.executable, "-m", "callstream", "publish", "-"],
        input=lines.encode(),
        env=env,
        capture_output=True,
        check=False,
        cwd=ROOT,
    )
    console.print(result.stderr.decode(), markup=False, highlight=False)


def end_offsets(consumer: Consumer, topic: str) -> list[TopicPartition]:
    metadata = consumer.list_topics(topic, timeout=10)
    parts = []
    for p in metadata.topics[topic].partitions:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        parts.append(TopicPartition(topic, p, high))
    return parts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=40, help="generated intents besides samples")
    parser.add_argument("--seconds", type=float, default=120.0, help="stop after this long")
    args = parser.parse_args()

    settings = Settings()
    created = ensure_topics(settings)
    if created:
        console.print(f"created topics: {', '.join(created)}")
    env = service_env(settings.kafka_bootstrap_servers)
    logs = Path(tempfile.mkdtemp(prefix="callstream-demo-"))
    procs: dict[str, subprocess.Popen[bytes]] = {}
    run = uuid.uuid4().hex[:6]
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"demo-{run}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    try:
        procs["sandbox"] = start("sandbox", ["sandbox"], env, logs)
        procs["gateway"] = start("gateway", ["gateway"], env, logs)
        procs["normalizer"] = start("normalizer", ["normalize"], env, logs)
        procs["dispatcher"] = start("dispatcher", ["dispatch"], env, logs)
        deadline = time.monotonic() + 60
        wait_ready("sandbox", f"http://127.0.0.1:{SANDBOX_PORT}/_sandbox/config", deadline, procs)
        for name in ("gateway", "normalizer", "dispatcher"):
            wait_ready(name, f"http://127.0.0.1:{HEALTH_PORTS[name]}/healthz", deadline, procs)

        consumer.assign(end_offsets(consumer, settings.topic_events))
        items = intents(run, args.calls)
        expected = {x["correlation_id"] for x in items if _valid(x)}
        publish(items, env)

        codec = call_event_codec()
        by_type: collections.Counter[str] = collections.Counter()
        ended: set[str] = set()
        seen: set[str] = set()
        stop_at = time.monotonic() + args.seconds
        last_event = time.monotonic()
        dispatched: set[str] = set()
        while time.monotonic() < stop_at:
            for msg in consumer.consume(num_messages=200, timeout=0.5):
                if msg.error():
                    continue
                event = codec.decode(msg.value())
                cid = event["correlation_id"] or "?"
                if run not in cid:
                    continue
                seen.add(cid)
                last_event = time.monotonic()
                if event["source"] == "DISPATCHER":
                    dispatched.add(cid)
                by_type[event["event_type"]] += 1
                if event["terminal"] or event["event_type"] == "DISPATCH_FAILED":
                    ended.add(cid)
                console.print(
                    f"{event['occurred_at']:%H:%M:%S.%f}"[:-3],
                    f"{event['source']:<10} {event['event_type']:<18}",
                    f"{cid:<40} {mask_msisdn(event['msisdn']) or '':<16}",
                    event["reason"] or "",
                    markup=False,
                    highlight=False,
                )
            # done when every call ended, or every call was dispatched and events stopped coming
            # (a call that asked only for non-final receipts never gets a terminal event)
            idle = time.monotonic() - last_event > 8
            if ended >= expected or (dispatched >= expected and idle):
                break
        table = Table(title=f"demo run {run}: events by type")
        table.add_column("event type")
        table.add_column("count", justify="right")
        for kind, count in sorted(by_type.items()):
            table.add_row(kind, str(count))
        console.print(table)
        console.print(
            f"valid calls published: {len(expected)}; with events: {len(seen & expected)}; "
            f"ended: {len(ended & expected)}; service logs: {logs}"
        )
        return 0
    finally:
        consumer.close()
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in procs.items():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                console.print(f"{name} did not stop in 30 s; killing it")
                proc.kill()


if __name__ == "__main__":
    sys.exit(main())
