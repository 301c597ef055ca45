"""The dispatcher as real processes (``python -m callstream dispatch``): kill -9 and restart, and
two processes sharing the load through rebalances.

Guarantees checked from the topics and the sandbox's ledger (duplicate window off, so a call
placed twice shows as two acceptances): every request record ends with exactly one result; calls
placed twice are at most the in-flight limit, and none for a record whose result was written
before the crash.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.integration.test_dispatch_support import (
    PARTITIONS,
    Outputs,
    Platform,
    Topics,
    call_request,
    dispatch_env,
    dispatch_topics,
    dispatcher_command,
    encode,
    platform,
    publish,
    read_outputs,
)

__all__ = ["dispatch_topics", "platform"]
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
MAX_IN_FLIGHT = 16
N = 1500


class Dispatchers:
    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        with (self.logs / f"dispatcher-{len(self.procs)}.log").open("wb") as log:
            proc = subprocess.Popen(
                dispatcher_command(), env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@pytest.fixture
def dispatchers(
    kafka_bootstrap: str, dispatch_topics: Topics, platform: Platform, group_id: str, tmp_path: Path
) -> Iterator[Dispatchers]:
    env = dispatch_env(
        kafka_bootstrap,
        dispatch_topics,
        platform,
        group_id,
        CALLSTREAM_DISPATCH_MAX_IN_FLIGHT=str(MAX_IN_FLIGHT),
        # a killed member leaves the group when its session times out: keep that short
        CALLSTREAM_KAFKA__SESSION_TIMEOUT_MS="6000",
        CALLSTREAM_KAFKA__HEARTBEAT_INTERVAL_MS="1000",
        CALLSTREAM_LOG_LEVEL="INFO",  # one line per outcome: checked for secrets and numbers
    )
    d = Dispatchers(env, tmp_path)
    try:
        yield d
    finally:
        d.stop_all()


def _publish(bootstrap: str, topics: Topics, prefix: str) -> None:
    publish(
        bootstrap,
        topics.requests,
        [(f"{prefix}-{i}".encode(), encode(call_request(f"{prefix}-{i}", i))) for i in range(N)],
    )


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _accepted(platform: Platform) -> int:
    return int(platform.client.summary()["accepted"])


def group_finished(bootstrap: str, group: str, topics: list[str]) -> bool:
    """The group committed every partition of ``topics`` up to its high watermark."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        committed = {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(tps, 10)}
        for tp in tps:
            _, high = consumer.get_watermark_offsets(tp, timeout=10)
            if high > 0 and committed[(tp.topic, tp.partition)] < high:
                return False
        return True
    finally:
        consumer.close()


def _check_logs(logs: Path, platform: Platform) -> None:
    """Outcome lines are there; the service key and whole phone numbers never are."""
    text = "".join(p.read_text(errors="replace") for p in sorted(logs.glob("dispatcher-*.log")))
    assert '"dispatch outcome"' in text
    assert platform.key not in text
    assert not re.search(r"\+?1415555\d{4}", text), "a phone number was logged unmasked"
    assert re.search(r"\+141\*{6}\d{2}", text), "masked numbers are logged"


def _check(out: Outputs, topics: Topics) -> None:
    out.assert_one_result_and_event_per_request_allowing_replays(topics.requests, MAX_IN_FLIGHT)
    assert {r["outcome"] for r in out.results} == {"QUEUED"}
    assert not out.dlq


def _drain_then_check(
    last: subprocess.Popen[bytes],
    bootstrap: str,
    group_id: str,
    topics: Topics,
    platform: Platform,
) -> set[str]:
    """Let ``last`` commit every record, stop it, check the outputs and that nothing was lost;
    the correlation ids placed more than once."""
    _wait(
        lambda: group_finished(bootstrap, group_id, [topics.requests, topics.retry]),
        180,
        "every record committed",
    )
    last.send_signal(signal.SIGTERM)
    assert last.wait(60) == 0
    _check(read_outputs(bootstrap, topics), topics)
    accepted = platform.client.accepted_correlation_ids()
    assert len(accepted) == N, "no request lost"
    return {cid for cid, count in accepted.items() if count > 1}


def test_kill_9_then_restart(
    kafka_bootstrap: str,
    dispatch_topics: Topics,
    platform: Platform,
    group_id: str,
    dispatchers: Dispatchers,
) -> None:
    platform.client.configure(latency_ms=15.0)
    _publish(kafka_bootstrap, dispatch_topics, "k9")
    first = dispatchers.start()
    _wait(lambda: _accepted(platform) >= N // 4, 120, "a quarter of the calls placed")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    written_before = {
        r["correlation_id"] for r in read_outputs(kafka_bootstrap, dispatch_topics).results
    }
    assert written_before, "results were written before the crash"
    second = dispatchers.start()
    twice = _drain_then_check(second, kafka_bootstrap, group_id, dispatch_topics, platform)
    print(f"kill -9: {len(written_before)} results before the crash; placed twice: {len(twice)}")
    assert len(twice) <= MAX_IN_FLIGHT, twice
    assert not twice & written_before, "a call whose result was written was placed again"
    _check_logs(dispatchers.logs, platform)


def test_two_processes_with_rebalances(
    kafka_bootstrap: str,
    dispatch_topics: Topics,
    platform: Platform,
    group_id: str,
    dispatchers: Dispatchers,
) -> None:
    platform.client.configure(latency_ms=15.0)
    _publish(kafka_bootstrap, dispatch_topics, "rb")
    first = dispatchers.start()
    _wait(lambda: _accepted(platform) >= N // 5, 120, "a fifth of the calls placed")
    second = dispatchers.start()  # joins: rebalance
    _wait(lambda: _accepted(platform) >= N // 2, 120, "half of the calls placed")
    first.send_signal(signal.SIGTERM)  # leaves: rebalance, the second takes everything
    assert first.wait(60) == 0
    twice = _drain_then_check(second, kafka_bootstrap, group_id, dispatch_topics, platform)
    print(f"rebalances: placed twice: {len(twice)}")
    assert len(twice) <= MAX_IN_FLIGHT, twice
    _check_logs(dispatchers.logs, platform)
