"""The gateway over real HTTP on 127.0.0.1 and the real local Kafka (design section 8)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from confluent_kafka import Consumer, Message, TopicPartition

from callstream import headers as h
from callstream.settings import Settings
from producers.gateway.auth import hmac_signature
from producers.gateway.server import GatewayServer
from producers.gateway.settings import GatewaySettings
from tests.kafka_fixtures import NewTopicFactory, free_ports, load_launcher

pytestmark = pytest.mark.integration

SECRET = "webhook-secret"


# -- helpers --------------------------------------------------------------------------------


@asynccontextmanager
async def running_gateway(
    bootstrap: str, topic: str, **gateway: Any
) -> AsyncIterator[GatewayServer]:
    settings = Settings(
        kafka_bootstrap_servers=bootstrap,
        topic_callbacks_raw=topic,
        http_host="127.0.0.1",
        http_port=0,
    )
    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "readiness_probe_seconds": 0.5,
        **gateway,
    }
    server = GatewayServer(settings, GatewaySettings(**options))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def read_topic(bootstrap: str, topic: str, timeout: float = 20.0) -> list[Message]:
    """Every record of ``topic``, from the beginning to each partition's end at call time."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends: dict[int, int] = {}
        for p in partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > 0:
                ends[p] = high
        if not ends:
            return []
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        records: list[Message] = []
        deadline = time.monotonic() + timeout
        while ends and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            records.append(msg)
            offset, partition = msg.offset(), msg.partition()
            if (
                offset is not None
                and partition is not None
                and offset + 1 >= ends.get(partition, 0)
            ):
                ends.pop(partition, None)
        if ends:
            raise TimeoutError(f"could not read {topic} to its end: {ends}")
        return records
    finally:
        consumer.close()


def header_map(msg: Message) -> dict[str, bytes]:
    headers = msg.headers() or []
    pairs = headers.items() if isinstance(headers, dict) else headers
    return {k: v.encode() if isinstance(v, str) else v for k, v in pairs if v is not None}


def url(server: GatewayServer, path: str = "/callbacks") -> str:
    return f"http://127.0.0.1:{server.port}{path}"


def callback(transid: str, status: str = "ANSWERED") -> bytes:
    return orjson.dumps(
        {
            "deliveryInfoNotification": {
                "deliveryInfo": {
                    "timeStamp": "2026-11-29T10:00:00Z",
                    "code": "7519",
                    "destination": "+14155550123",
                    "deliveryStatus": status,
                },
                "transid": transid,
                "correlationid": "c-1",
            }
        }
    )


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"x-hub-signature": "sha256=" + hmac_signature(body, secret.encode())}


async def only_sentinel_written(
    http: aiohttp.ClientSession, server: GatewayServer, bootstrap: str, topic: str, **kw: Any
) -> None:
    """Write one accepted callback after the rejected ones, then prove it is all the topic holds."""
    body = callback("sentinel")
    async with http.post(url(server), data=body, **kw) as resp:
        assert resp.status == 200
    records = await asyncio.to_thread(read_topic, bootstrap, topic)
    assert [m.value() for m in records] == [body]


# -- tests ----------------------------------------------------------------------------------


async def test_callback_is_stored_byte_for_byte_with_key_and_headers(
    kafka_bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = new_topic("raw")
    body = b'  {"deliveryInfoNotification": {"transid": "tx-42", "x": "\xc3\xa9"}}\n'
    async with (
        running_gateway(kafka_bootstrap, topic, auth="hmac", hmac_secret=SECRET) as gw,
        aiohttp.ClientSession() as http,
        http.post(
            url(gw, "/callbacks/tenant-a"),
            data=body,
            headers={**signed(body), "Content-Type": "application/json"},
        ) as resp,
    ):
        assert resp.status == 200
        answer = await resp.json()
        request_id = resp.headers["X-Request-Id"]
    assert answer == {"status": "stored", "request_id": request_id}
    before_ms = int(time.time() * 1000)
    [record] = await asyncio.to_thread(read_topic, kafka_bootstrap, topic)
    assert record.value() == body
    assert record.key() == b"tx-42"
    headers = header_map(record)
    assert headers[h.REQUEST_ID] == request_id.encode()
    assert headers[h.AUTH_METHOD] == b"hmac"
    assert headers[h.REMOTE_ADDR] == b"127.0.0.1"
    assert headers[h.CONTENT_TYPE] == b"application/json"
    assert 0 < int(headers[h.RECEIVED_AT]) <= before_ms


async def test_non_json_body_is_stored_without_key(
    kafka_bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = new_topic("raw")
    bodies = [b"{'deliveryInfoNotification': oops", b"\x00\xff binary", b""]
    async with running_gateway(kafka_bootstrap, topic) as gw, aiohttp.ClientSession() as http:
        for body in bodies:
            async with http.post(url(gw), data=body) as resp:
                assert resp.status == 200
    records = await asyncio.to_thread(read_topic, kafka_bootstrap, topic)
    assert sorted(m.value() or b"" for m in records) == sorted(bodies)
    assert all(m.key() is None for m in records)
    assert all(header_map(m)[h.AUTH_METHOD] == b"none" for m in records)


async def test_head_other_methods_and_paths(
    kafka_bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = new_topic("raw")
    async with running_gateway(kafka_bootstrap, topic) as gw, aiohttp.ClientSession() as http:
        async with http.head(url(gw)) as resp:
            assert resp.status == 200
            assert resp.headers["X-Request-Id"]
        for method in ("GET", "PUT", "DELETE", "PATCH"):
            async with http.request(method, url(gw), data=b"{}") as resp:
                assert resp.status == 405
                assert resp.headers["Allow"] == "POST, HEAD"
        async with http.post(url(gw, "/elsewhere"), data=b"{}") as resp:
            assert resp.status == 404
        await only_sentinel_written(http, gw, kafka_bootstrap, topic)


async def test_oversize_body_is_413_and_nothing_is_written(
    kafka_bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = new_topic("raw")
    async with (
        running_gateway(kafka_bootstrap, topic, max_body_bytes=1024) as gw,
        aiohttp.ClientSession() as http,
    ):
        async with http.post(url(gw), data=b"x" * 1025) as resp:
            assert resp.status == 413

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: the read must stop
            for _ in range(8):
                yield b"y" * 512

        async with http.post(url(gw), data=chunked()) as resp:
            assert resp.status == 413
        async with http.post(url(gw), data=b"z" * 1024) as resp:  # exactly the limit is fine
            assert resp.status == 200
        records = await asyncio.to_thread(read_topic, kafka_bootstrap, topic)
        assert [m.value() for m in records] == [b"z" * 1024]


async def test_wrong_signature_is_401_and_nothing_is_written(
    kafka_bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = new_topic("raw")
    body = callback("tx-1")
    async with (
        running_gateway(kafka_bootstrap, topic, auth="hmac", hmac_secret=SECRET) as gw,
        aiohttp.ClientSession() as http,
    ):
        for headers in (
            {},
            signed(body, "not-the-secret"),
            signed(body + b" "),
            {"x-hub-signature": "sha256=zz"},
        ):
            async with http.post(url(gw), data=body, headers=headers) as resp:
                assert resp.status == 401
        sentinel = callback("sentinel")
        await only_sentinel_written(http, gw, kafka_bootstrap, topic, headers=signed(sentinel))


async def test_basic_auth(kafka_bootstrap: str, new_topic: NewTopicFactory) -> None:
    topic = new_topic("raw")
    good = {"Authorization": basic("platform", "pw")}
    async with (
        running_gateway(
            kafka_bootstrap, topic, auth="basic", basic_username="platform", basic_password="pw"
        ) as gw,
        aiohttp.ClientSession() as http,
    ):
        async with http.post(url(gw), data=b"{}") as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Basic")
        async with http.post(
            url(gw), data=b"{}", headers={"Authorization": basic("platform", "x")}
        ) as r:
            assert r.status == 401
        bogus = {"Authorization": "Basic " + base64.b64encode(b"platformpw").decode()}
        async with http.post(url(gw), data=b"{}", headers=bogus) as resp:
            assert resp.status == 401
        await only_sentinel_written(http, gw, kafka_bootstrap, topic, headers=good)


async def test_api_key(kafka_bootstrap: str, new_topic: NewTopicFactory) -> None:
    topic = new_topic("raw")
    async with (
        running_gateway(kafka_bootstrap, topic, auth="apikey", apikey="k-1") as gw,
        aiohttp.ClientSession() as http,
    ):
        for headers in ({}, {"x-api-key": "k-2"}, {"x-api-key": "k-1x"}):
            async with http.post(url(gw), data=b"{}", headers=headers) as resp:
                assert resp.status == 401
        await only_sentinel_written(http, gw, kafka_bootstrap, topic, headers={"X-Api-Key": "k-1"})


async def test_health_ready_and_metrics(kafka_bootstrap: str, new_topic: NewTopicFactory) -> None:
    topic = new_topic("raw")
    async with (
        running_gateway(kafka_bootstrap, topic, auth="apikey", apikey="k") as gw,
        aiohttp.ClientSession() as http,
    ):
        health = f"http://127.0.0.1:{gw.health_port}"
        async with http.get(health + "/healthz") as resp:
            assert resp.status == 200
        for _ in range(100):  # the first metadata probe may take a moment
            async with http.get(health + "/readyz") as resp:
                if resp.status == 200:
                    break
            await asyncio.sleep(0.1)
        assert resp.status == 200
        async with http.post(url(gw), data=b"{}", headers={"x-api-key": "k"}) as resp:
            assert resp.status == 200
        async with http.post(url(gw), data=b"{}") as resp:
            assert resp.status == 401
        async with http.get(health + "/metrics") as resp:
            text = await resp.text()
    assert 'callstream_gateway_requests_total{status="200"} 1.0' in text
    assert 'callstream_gateway_requests_total{status="401"} 1.0' in text
    assert 'callstream_gateway_auth_failures_total{method="apikey"} 1.0' in text
    assert 'callstream_gateway_write_seconds_count{outcome="ok"} 1.0' in text


async def test_unreachable_kafka_is_503_never_200(new_topic: NewTopicFactory) -> None:
    [dead_port] = free_ports(1)  # nothing listens there
    async with (
        running_gateway(
            f"127.0.0.1:{dead_port}", "calls.callbacks.raw", write_timeout_seconds=1
        ) as gw,
        aiohttp.ClientSession() as http,
    ):
        answers = await asyncio.gather(
            *(_post_status(http, url(gw), callback(f"t{i}")) for i in range(5))
        )
        async with http.get(f"http://127.0.0.1:{gw.health_port}/readyz") as resp:
            assert resp.status == 503
    assert answers == [503] * 5


async def _post_status(http: aiohttp.ClientSession, target: str, body: bytes) -> int:
    async with http.post(target, data=body) as resp:
        return resp.status


async def test_broker_frozen_then_stopped_mid_run_never_200(tmp_path: Path) -> None:
    """A private broker; callbacks flow from 4 clients while it is frozen (SIGSTOP), thawed, then
    stopped. Every answer to a request sent while the broker is frozen or stopped is 503, and
    every 200 answered before is in the topic."""
    launcher = load_launcher()
    port, controller_port = free_ports(2)
    broker = launcher.start(
        port, controller_port, tmp_path / "kafka", fresh=True, die_with_parent=True
    )
    try:
        bootstrap = broker.bootstrap_servers
        topic = "calls.callbacks.raw"
        await asyncio.to_thread(_create_topic, bootstrap, topic)
        async with (
            running_gateway(bootstrap, topic, write_timeout_seconds=1) as gw,
            aiohttp.ClientSession() as http,
        ):
            load = _Load(http, url(gw))
            await load.run_until(lambda: len(load.stored) >= 20)

            os.kill(broker.pid, signal.SIGSTOP)  # frozen: connected, but never answers
            try:
                load.phase = "frozen"
                await load.run_until(lambda: len(load.answers["frozen"]) >= 8)
            finally:
                os.kill(broker.pid, signal.SIGCONT)
            load.phase = "thawed"
            stored = list(load.stored)
            records = await asyncio.to_thread(read_topic, bootstrap, topic)
            written = {header_map(m)[h.REQUEST_ID].decode() for m in records}
            assert set(stored) <= written

            await asyncio.to_thread(broker.stop)
            load.phase = "stopped"
            await load.run_until(lambda: len(load.answers["stopped"]) >= 8)
        assert set(load.answers["frozen"]) == {503}
        assert set(load.answers["stopped"]) == {503}
    finally:
        broker.stop()


class _Load:
    """Four clients posting callbacks in a loop; answers are filed under the phase in which
    their request was sent."""

    def __init__(self, http: aiohttp.ClientSession, target: str) -> None:
        self.http = http
        self.target = target
        self.phase = "live"
        self.answers: dict[str, list[int]] = {"live": [], "frozen": [], "thawed": [], "stopped": []}
        self.stored: list[str] = []
        self._n = 0

    async def _client(self, done: asyncio.Event, until: Callable[[], bool]) -> None:
        while not done.is_set():
            phase = self.phase
            self._n += 1
            async with self.http.post(self.target, data=callback(f"tx-{self._n}")) as resp:
                self.answers[phase].append(resp.status)
                if resp.status == 200:
                    self.stored.append(resp.headers["X-Request-Id"])
            if until():
                done.set()

    async def run_until(self, until: Callable[[], bool]) -> None:
        done = asyncio.Event()
        async with asyncio.timeout(60):
            await asyncio.gather(*(self._client(done, until) for _ in range(4)))


def _create_topic(bootstrap: str, topic: str) -> None:
    from callstream.topics import ensure_topics

    ensure_topics(Settings(kafka_bootstrap_servers=bootstrap), [topic], partitions=3)


async def test_cli_sigterm_finishes_in_flight_and_exits_0(
    kafka_bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = new_topic("raw")
    port, health_port = free_ports(2)
    env = {
        **os.environ,
        "CALLSTREAM_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CALLSTREAM_TOPIC_CALLBACKS_RAW": topic,
        "CALLSTREAM_HTTP_HOST": "127.0.0.1",
        "CALLSTREAM_HTTP_PORT": str(health_port),
        "CALLSTREAM_GATEWAY_HOST": "127.0.0.1",
        "CALLSTREAM_GATEWAY_PORT": str(port),
        "CALLSTREAM_GATEWAY_AUTH": "apikey",
        "CALLSTREAM_GATEWAY_APIKEY": "the-api-key",
        "CALLSTREAM_GATEWAY_READINESS_PROBE_SECONDS": "0.5",
        "CALLSTREAM_LOG_FORMAT": "json",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "callstream",
        "gateway",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{health_port}/readyz") as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("the gateway never became ready")
            target = f"http://127.0.0.1:{port}/callbacks"
            key = {"x-api-key": "the-api-key"}

            async def post(i: int) -> str | None:
                async with http.post(target, data=callback(f"t{i}"), headers=key) as resp:
                    assert resp.status == 200
                    return resp.headers["X-Request-Id"]

            first = await post(0)
            in_flight = [asyncio.create_task(post(i)) for i in range(1, 30)]
            await asyncio.sleep(0)
            proc.send_signal(signal.SIGTERM)
            outcomes = await asyncio.gather(*in_flight, return_exceptions=True)
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout=30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, stderr.decode()[-2000:]
    # a request either completed with 200 or never reached the closed listener
    answered = {first} | {o for o in outcomes if isinstance(o, str)}
    assert all(isinstance(o, str | aiohttp.ClientConnectionError) for o in outcomes), outcomes
    records = await asyncio.to_thread(read_topic, kafka_bootstrap, topic)
    assert answered <= {header_map(m)[h.REQUEST_ID].decode() for m in records}
    assert b"the-api-key" not in stderr
