"""The session's broker really works: groups commit, transactions commit and abort, idempotence.

And the local launcher (``dev/kafka/launcher.py``) starts, reports and stops brokers cleanly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from tests.kafka_fixtures import LAUNCHER_PATH, NewTopicFactory, free_ports, load_launcher

pytestmark = pytest.mark.integration

POLL_TIMEOUT_S = 30.0


def consume(consumer: Consumer, want: int, timeout: float = POLL_TIMEOUT_S) -> list[Message]:
    """Poll until ``want`` messages arrived or ``timeout`` passed; raise on a real error."""
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(out) < want and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                continue
            raise KafkaException(err)
        out.append(msg)
    return out


def drain(consumer: Consumer, partitions: int, timeout: float = POLL_TIMEOUT_S) -> list[Message]:
    """Everything up to the end of every partition (``enable.partition.eof`` must be on)."""
    out: list[Message] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(at_end) < partitions:
        assert time.monotonic() < deadline, f"reached the end of {sorted(at_end)} only"
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                at_end.add(msg.partition() or 0)
                continue
            raise KafkaException(err)
        out.append(msg)
    return out


@pytest.fixture
def make_consumer(kafka_bootstrap: str) -> Iterator[Any]:
    consumers: list[Consumer] = []

    def make(**config: Any) -> Consumer:
        consumer = Consumer(
            {
                "bootstrap.servers": kafka_bootstrap,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                **{key.replace("_", "."): value for key, value in config.items()},
            }
        )
        consumers.append(consumer)
        return consumer

    yield make
    for consumer in consumers:
        consumer.close()


def value(msg: Message) -> bytes:
    data = msg.value()
    assert isinstance(data, bytes), f"no value at offset {msg.offset()}"
    return data


def text(msg: Message) -> str:
    return value(msg).decode()


def produce_all(producer: Producer, topic: str, values: list[bytes]) -> list[Message]:
    """Produce, flush and return the delivery reports; fail on any delivery error."""
    reports: list[Message] = []
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(err)
        else:
            reports.append(msg)

    for i, value in enumerate(values):
        producer.produce(topic, value, key=f"k{i}".encode(), on_delivery=on_delivery)
    assert producer.flush(POLL_TIMEOUT_S) == 0, "messages left undelivered"
    assert errors == []
    return reports


@pytest.mark.timeout(120)
def test_consumer_group_commits_offsets(
    kafka_bootstrap: str, new_topic: NewTopicFactory, group_id: str, make_consumer: Any
) -> None:
    topic = new_topic("group", partitions=3)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all"})
    values = [f"m{i}".encode() for i in range(30)]
    produce_all(producer, topic, values)

    consumer = make_consumer(group_id=group_id)
    consumer.subscribe([topic])
    got = consume(consumer, len(values))
    assert sorted(value(m) for m in got) == sorted(values)
    consumer.commit(asynchronous=False)

    fresh = make_consumer(group_id=group_id)  # another member reads the group's stored offsets
    partitions = [TopicPartition(topic, p) for p in range(3)]
    committed = fresh.committed(partitions, timeout=POLL_TIMEOUT_S)
    ends = [fresh.get_watermark_offsets(tp, timeout=POLL_TIMEOUT_S)[1] for tp in partitions]
    assert [tp.offset for tp in committed] == ends
    assert sum(ends) == len(values)


@pytest.mark.timeout(120)
def test_read_committed_sees_only_committed_transactions(
    kafka_bootstrap: str, new_topic: NewTopicFactory, make_consumer: Any
) -> None:
    topic = new_topic("txn", partitions=1)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"tx-{topic}"})
    producer.init_transactions(POLL_TIMEOUT_S)
    for name, count, commit in (("c1", 5, True), ("a1", 5, False), ("c2", 2, True)):
        producer.begin_transaction()
        for i in range(count):
            producer.produce(topic, f"{name}-{i}".encode())
        if commit:
            producer.commit_transaction(POLL_TIMEOUT_S)
        else:
            producer.flush(POLL_TIMEOUT_S)  # the aborted records really reach the log
            producer.abort_transaction(POLL_TIMEOUT_S)

    committed = make_consumer(
        group_id=f"rc-{topic}", isolation_level="read_committed", enable_partition_eof=True
    )
    committed.subscribe([topic])
    seen = [text(m) for m in drain(committed, partitions=1)]
    assert seen == [f"c1-{i}" for i in range(5)] + [f"c2-{i}" for i in range(2)]

    uncommitted = make_consumer(
        group_id=f"ru-{topic}", isolation_level="read_uncommitted", enable_partition_eof=True
    )
    uncommitted.subscribe([topic])
    raw = [text(m) for m in drain(uncommitted, partitions=1)]
    assert [v for v in raw if v.startswith("a1-")] == [f"a1-{i}" for i in range(5)]


@pytest.mark.timeout(120)
def test_transaction_commits_consumed_offsets(
    kafka_bootstrap: str, new_topic: NewTopicFactory, group_id: str, make_consumer: Any
) -> None:
    """Read-process-write: output and input offsets commit atomically in one transaction."""
    source, sink = new_topic("src", partitions=1), new_topic("sink", partitions=1)
    produce_all(Producer({"bootstrap.servers": kafka_bootstrap}), source, [b"a", b"b", b"c"])

    consumer = make_consumer(group_id=group_id, isolation_level="read_committed")
    consumer.subscribe([source])
    inputs = consume(consumer, 3)
    assert len(inputs) == 3
    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "transactional.id": f"tx-{group_id}"}
    )
    producer.init_transactions(POLL_TIMEOUT_S)
    producer.begin_transaction()
    for msg in inputs:
        producer.produce(sink, value(msg).upper())
    producer.send_offsets_to_transaction(
        consumer.position(consumer.assignment()),
        consumer.consumer_group_metadata(),
        POLL_TIMEOUT_S,
    )
    producer.commit_transaction(POLL_TIMEOUT_S)

    stored = make_consumer(group_id=group_id).committed(
        [TopicPartition(source, 0)], timeout=POLL_TIMEOUT_S
    )
    assert stored[0].offset == 3
    reader = make_consumer(
        group_id=f"r-{group_id}", isolation_level="read_committed", enable_partition_eof=True
    )
    reader.subscribe([sink])
    assert [value(m) for m in drain(reader, partitions=1)] == [b"A", b"B", b"C"]


@pytest.mark.timeout(120)
def test_idempotent_producer_with_acks_all(
    kafka_bootstrap: str, new_topic: NewTopicFactory, group_id: str, make_consumer: Any
) -> None:
    topic = new_topic("idem", partitions=1)
    producer = Producer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "max.in.flight.requests.per.connection": 5,
            "linger.ms": 5,
        }
    )
    values = [f"v{i}".encode() for i in range(200)]
    reports = produce_all(producer, topic, values)
    assert [r.offset() for r in reports] == list(range(200))  # no gap, no duplicate, in order

    consumer = make_consumer(group_id=group_id, enable_partition_eof=True)
    consumer.subscribe([topic])
    assert [value(m) for m in drain(consumer, partitions=1)] == values


# --- the launcher itself ---------------------------------------------------------------------


def _launcher_usable() -> bool:
    launcher = load_launcher()
    try:
        launcher.find_java()
        if not launcher.jars_complete():
            launcher.find_mvn()
    except launcher.ToolMissingError:
        return False
    return True


needs_launcher = pytest.mark.skipif(not _launcher_usable(), reason="no java 17+ or mvn")


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(LAUNCHER_PATH), *args],
        capture_output=True,
        text=True,
        timeout=150,
        env=env,
        check=False,
    )


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@needs_launcher
@pytest.mark.timeout(200)
def test_cli_up_status_down_leaves_no_java(tmp_path: Path) -> None:
    launcher = load_launcher()
    port, controller_port = free_ports(2)
    where = ["--data-dir", str(tmp_path), "--port", str(port), "--controller-port"]
    where.append(str(controller_port))
    try:
        up = _cli("up", *where)
        assert up.returncode == 0, up.stderr
        assert up.stdout.strip() == f"127.0.0.1:{port}"
        pid = int((tmp_path / "broker.pid").read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert Path(cmdline[0].decode()).name == "java"
        assert b"kafka.Kafka" in cmdline
        assert launcher.probe(port)

        assert _cli("status", *where).returncode == 0
        again = _cli("up", *where)  # idempotent: the running broker is reported, not doubled
        assert again.returncode == 0, again.stderr
        assert launcher.broker_pids(tmp_path) == [pid]

        down = _cli("down", *where)
        assert down.returncode == 0, down.stderr
        assert not _running(pid)
        assert launcher.broker_pids(tmp_path) == []
        assert not (tmp_path / "broker.pid").exists()
        assert _cli("status", *where).returncode == 1
        assert "[BrokerServer id=1] shut down completed" in (tmp_path / "broker.log").read_text()
    finally:
        launcher.stop(tmp_path)


@needs_launcher
@pytest.mark.timeout(200)
def test_stop_finds_the_jvm_without_its_pid_file(tmp_path: Path) -> None:
    launcher = load_launcher()
    port, controller_port = free_ports(2)
    broker = launcher.start(port, controller_port, tmp_path, die_with_parent=True)
    try:
        assert _running(broker.pid)
        (tmp_path / "broker.pid").unlink()
        assert launcher.stop(tmp_path) is True
        assert not _running(broker.pid)
        assert launcher.broker_pids(tmp_path) == []
        assert launcher.status(tmp_path) is None
    finally:
        broker.stop()


def test_cli_exits_2_without_java(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = str(tmp_path)  # an empty directory: neither java nor mvn
    result = _cli("up", "--data-dir", str(tmp_path / "data"), env=env)
    assert result.returncode == 2
    assert "java not found" in result.stderr


def test_ensure_jars_without_mvn_is_tool_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launcher = load_launcher()
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no mvn
    with pytest.raises(launcher.ToolMissingError, match="mvn not found") as caught:
        launcher.ensure_jars(cache_dir=tmp_path / "cache")  # an empty cache must resolve
    assert caught.value.exit_code == 2
