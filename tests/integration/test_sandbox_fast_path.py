"""The Make Call fast path (one destination, no fault, no seed, no callbacks) over real HTTP:
the call it records answers GET status with the request's number, and 409s as the general path."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from sandbox.exceptions import SandboxClientError

if TYPE_CHECKING:
    from tests.sandbox_fixtures import SandboxHandle

pytestmark = pytest.mark.integration
Body = Callable[..., dict[str, Any]]


def test_fast_path_status_and_duplicate(
    sandbox_factory: Callable[..., SandboxHandle], make_call_body: Body
) -> None:
    sandbox = sandbox_factory(callbacks=False)
    body = make_call_body()
    number = body["to"][0]["msisdn"][0]
    reply = sandbox.make_call(body)
    assert reply.status == 201
    status = sandbox.request("GET", f"/v2/messages/{reply.json()['messageId']}").json()
    assert status["to"] == number
    assert status["correlationId"] == body["to"][0]["correlationId"]
    again = sandbox.make_call(body)
    assert again.status == 409
    cid = body["to"][0]["correlationId"]
    assert again.json() == {"code": "7130", "message": f"Duplicate correlationId: {cid}"}
    ledger = sandbox.client.ledger()
    assert [r["http_status"] for r in ledger["requests"]] == [201, 409]
    assert ledger["requests"][0]["msisdns"] == [number]
    assert ledger["requests"][0]["message_ids"] == [reply.json()["messageId"]]
    assert ledger["summary"]["accepted_by_correlation_id"] == {cid: 1}


def test_forgotten_ids_make_the_exactly_once_helper_refuse(
    sandbox_factory: Callable[..., SandboxHandle], make_call_body: Body
) -> None:
    sandbox = sandbox_factory(callbacks=False, ledger_id_limit=3)
    cids = []
    for _ in range(4):
        body = make_call_body()
        cids.append(body["to"][0]["correlationId"])
        assert sandbox.make_call(body).status == 201
    summary = sandbox.client.summary()
    assert summary["correlation_ids_forgotten"] == 1
    assert set(summary["accepted_by_correlation_id"]) == set(cids[1:])
    with pytest.raises(SandboxClientError, match="forgot 1 correlation ids"):
        sandbox.client.accepted_correlation_ids()
    sandbox.client.reset()
    assert sandbox.client.accepted_correlation_ids() == {}


def test_a_body_that_arrives_in_pieces_is_read_whole(
    sandbox_factory: Callable[..., SandboxHandle], make_call_body: Body
) -> None:
    """The handler takes a fully arrived body as it is; one still arriving is awaited."""
    sandbox = sandbox_factory(callbacks=False)
    body = make_call_body()
    raw = orjson.dumps(body)
    host, port = sandbox.url.removeprefix("http://").split(":")
    head = (
        f"POST /v2/messages HTTP/1.1\r\nHost: {host}\r\nkey: {sandbox.service_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(head + raw[:10])
        time.sleep(0.2)  # the handler starts with part of the body only
        sock.sendall(raw[10:])
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 201 Created"
    reply = orjson.loads(rest.partition(b"\r\n\r\n")[2])
    assert reply["correlationId"] == body["to"][0]["correlationId"]
    requests = sandbox.client.ledger()["requests"]
    assert [r["body"] for r in requests] == [body]
