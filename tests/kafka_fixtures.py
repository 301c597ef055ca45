"""Pytest plugin: one real Kafka broker per test session, plus unique topics and group ids.

Where the broker comes from (design.md section 6), first match wins:

1. ``CALLSTREAM_KAFKA_BOOTSTRAP_SERVERS``, if set: used as is (checked with ``list_topics``);
2. a testcontainers Kafka, when a Docker engine answers ``/_ping`` on its socket within 1 s;
3. the local launcher (``dev/kafka/launcher.py``): a real Apache Kafka 4.x JVM on two free
   loopback ports in a temporary directory, stopped at session end, at interpreter exit
   (``atexit``), and by the kernel if the test process dies (``PR_SET_PDEATHSIG``).

Fixtures: ``kafka_bootstrap`` (session, ``str``), ``admin`` (session, ``AdminClient``),
``new_topic`` (function, a factory ``(name_prefix="t", partitions=3, config=None) -> str``
whose topics are deleted afterwards) and ``group_id`` (function, ``str``).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # NewTopic: re-exported, no __all__
    AdminClient,
    NewTopic,
)

BOOTSTRAP_ENV = "CALLSTREAM_KAFKA_BOOTSTRAP_SERVERS"
IMAGE_ENV = "CALLSTREAM_KAFKA_TEST_IMAGE"  # for the testcontainers path only
DEFAULT_IMAGE = "confluentinc/cp-kafka:7.9.0"
LAUNCHER_PATH = Path(__file__).resolve().parents[1] / "dev" / "kafka" / "launcher.py"
TOPIC_TIMEOUT_S = 30.0


def unique_name(prefix: str) -> str:
    """``prefix`` plus 12 random hex digits: every test gets names nobody else uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def load_launcher() -> ModuleType:
    """Import ``dev/kafka/launcher.py`` by path (``dev`` is not a package)."""
    name = "callstream_kafka_launcher"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, LAUNCHER_PATH)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {LAUNCHER_PATH}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def docker_engine_reachable(timeout: float = 1.0) -> bool:
    """True if a Docker engine answers ``GET /_ping``; fast False when there is no socket."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    address: str | tuple[str, int]
    if host.startswith("unix://"):
        address, family = host.removeprefix("unix://"), socket.AF_UNIX
        if not Path(address).exists():
            return False
    elif host.startswith("tcp://"):
        name, _, port = host.removeprefix("tcp://").rstrip("/").rpartition(":")
        address, family = (name, int(port or 2375)), socket.AF_INET
    else:
        return False
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b" 200 " in sock.recv(64)
    except OSError:
        return False


def wait_for_broker(bootstrap: str, timeout: float = 30.0) -> None:
    """Fail unless a real client sees at least one broker at ``bootstrap``."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    while True:
        try:
            if admin.list_topics(timeout=5).brokers:
                return
        except KafkaException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"no Kafka broker answers at {bootstrap} after {timeout:.0f} s")
        time.sleep(0.5)


def _testcontainers_broker() -> Iterator[str]:
    from testcontainers.community.kafka import KafkaContainer  # testcontainers.kafka warns

    container = (
        KafkaContainer(os.environ.get(IMAGE_ENV, DEFAULT_IMAGE))
        .with_kraft()
        .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
        .with_env("KAFKA_NUM_PARTITIONS", "3")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env("KAFKA_MIN_INSYNC_REPLICAS", "1")
    )
    with container:
        bootstrap: str = container.get_bootstrap_server()
        wait_for_broker(bootstrap)
        yield bootstrap


def _local_broker(data_dir: Path) -> Iterator[str]:
    launcher = load_launcher()
    broker: Any = None
    for attempt in (1, 2):  # a "free" port can be taken between the check and the bind
        port, controller_port = free_ports(2)
        try:
            broker = launcher.start(
                port, controller_port, data_dir, fresh=True, die_with_parent=True
            )
            break
        except launcher.BrokerStartError:
            launcher.stop(data_dir)
            if attempt == 2:
                raise
    atexit.register(broker.stop)  # the finally below may never run (e.g. os._exit, SIGKILL)
    try:
        wait_for_broker(broker.bootstrap_servers)
        yield broker.bootstrap_servers
    finally:
        broker.stop()
        atexit.unregister(broker.stop)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of the session's broker, e.g. ``"127.0.0.1:40123"``."""
    configured = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if configured:
        wait_for_broker(configured)
        yield configured
    elif docker_engine_reachable():
        yield from _testcontainers_broker()
    else:
        yield from _local_broker(tmp_path_factory.mktemp("kafka"))


@pytest.fixture(scope="session")
def admin(kafka_bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": kafka_bootstrap})


class NewTopicFactory(Protocol):
    def __call__(
        self, name_prefix: str = "t", partitions: int = 3, config: Mapping[str, str] | None = None
    ) -> str: ...


def _wait_for_leaders(admin: AdminClient, topic: str, partitions: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(KafkaException):
            meta = admin.list_topics(topic=topic, timeout=5).topics.get(topic)
            if (
                meta is not None
                and meta.error is None
                and len(meta.partitions) == partitions
                and all(p.error is None and p.leader >= 0 for p in meta.partitions.values())
            ):
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {topic} has no leader for every partition in {timeout} s")
        time.sleep(0.1)


@pytest.fixture
def new_topic(admin: AdminClient) -> Iterator[NewTopicFactory]:
    """Create uniquely named topics (replication factor 1); delete them after the test."""
    created: list[str] = []

    def create(
        name_prefix: str = "t", partitions: int = 3, config: Mapping[str, str] | None = None
    ) -> str:
        name = unique_name(name_prefix)
        spec = NewTopic(
            name, num_partitions=partitions, replication_factor=1, config=dict(config or {})
        )
        admin.create_topics([spec], operation_timeout=TOPIC_TIMEOUT_S)[name].result(
            timeout=TOPIC_TIMEOUT_S
        )
        created.append(name)
        _wait_for_leaders(admin, name, partitions, TOPIC_TIMEOUT_S)
        return name

    yield create
    if created:
        for future in admin.delete_topics(created, operation_timeout=TOPIC_TIMEOUT_S).values():
            with contextlib.suppress(KafkaException):
                future.result(timeout=TOPIC_TIMEOUT_S)


@pytest.fixture
def group_id() -> str:
    return unique_name("g")
