"""pytest plugin: the real sandbox and a callback receiver on loopback, each on its own thread.

- ``sandbox``: a sandbox with test-friendly settings (callback gaps of 1-5 ms, retries 50 ms
  apart, a 2 s callback timeout); a :class:`SandboxHandle`.
- ``sandbox_factory(**settings)``: the same with any :class:`~sandbox.settings.SandboxSettings`
  field overridden; every sandbox it made is stopped at teardown.
- ``callback_receiver``: a :class:`ReceiverHandle` whose ``url`` serves as notifyUrl; it records
  every request and answers the statuses it is told to (``respond_with(500, 200)``).
- ``make_call_body(**fields)``: a valid Make Call body (TTS), fields overridden or, with value
  ``None``, removed.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import orjson
import pytest

from sandbox.app import STATE, build_app
from sandbox.client import SandboxClient
from sandbox.receiver import CallbackReceiver, Received
from sandbox.server import BackgroundServer
from sandbox.settings import SandboxSettings
from sandbox.state import SandboxState

TEST_DEFAULTS: dict[str, Any] = {
    "port": 0,
    "callback_delay_min_ms": 1.0,
    "callback_delay_max_ms": 5.0,
    "callback_retry_delay_seconds": 0.05,
    "callback_timeout_seconds": 2.0,
    "log_level": "WARNING",
}
_ids = count(1)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class SandboxHandle:
    server: BackgroundServer
    settings: SandboxSettings
    client: SandboxClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = SandboxClient(self.server.url)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def service_key(self) -> str:
        return self.settings.service_key.get_secret_value()

    @property
    def state(self) -> SandboxState:
        """The live state, for white-box checks (read it only from the server's thread or after
        the traffic has settled)."""
        assert self.server.app is not None
        return self.server.app[STATE]

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        key: str | None = "",
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> Answer:
        """One HTTP request; ``key=""`` sends the right key, ``None`` none at all."""
        data = raw if raw is not None else (None if body is None else orjson.dumps(body))
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if key is not None:
            all_headers["key"] = key or self.service_key
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers=all_headers
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return Answer(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, dict(exc.headers), exc.read())

    def make_call(self, body: Any = None, **kwargs: Any) -> Answer:
        return self.request("POST", "/v2/messages", body, **kwargs)

    def stop(self) -> None:
        self.server.stop()


@dataclass
class ReceiverHandle:
    receiver: CallbackReceiver
    server: BackgroundServer

    @property
    def url(self) -> str:
        return self.server.url + "/callbacks"

    def respond_with(self, *statuses: int) -> None:
        self.receiver.respond_with(*statuses)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        return self.receiver.wait_for(count, timeout)

    @property
    def received(self) -> list[Received]:
        return self.receiver.received

    def bodies(self) -> list[Any]:
        return self.receiver.bodies()

    def stop(self) -> None:
        self.server.stop()


def call_body(**fields: Any) -> dict[str, Any]:
    n = next(_ids)
    body: dict[str, Any] = {
        "channel": "voice",
        "from": "+14155550100",
        "to": [{"msisdn": ["+14155550123"], "correlationId": f"cid-{n}"}],
        "callbackData": f"data-{n}",
        "content": {
            "type": "TtS",
            "ttsProcessor": "Azure",
            "language": "en-US",
            "voice": "GuyNeural",
            "region": "Canada",
            "text": "Time for lunch",
        },
    }
    for name, value in fields.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return body


@pytest.fixture
def make_call_body() -> Callable[..., dict[str, Any]]:
    return call_body


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., SandboxHandle]]:
    handles: list[SandboxHandle] = []

    def factory(**overrides: Any) -> SandboxHandle:
        settings = SandboxSettings(**{**TEST_DEFAULTS, **overrides})
        server = BackgroundServer(lambda: build_app(settings)).start()
        handle = SandboxHandle(server, settings)
        handles.append(handle)
        return handle

    yield factory
    for handle in handles:
        handle.stop()


@pytest.fixture
def sandbox(sandbox_factory: Callable[..., SandboxHandle]) -> SandboxHandle:
    return sandbox_factory()


@pytest.fixture
def callback_receiver() -> Iterator[ReceiverHandle]:
    receiver = CallbackReceiver()
    server = BackgroundServer(receiver.app).start()
    handle = ReceiverHandle(receiver, server)
    yield handle
    handle.stop()
