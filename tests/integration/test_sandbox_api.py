"""The sandbox over real HTTP on loopback: auth, error codes, 409, 429, faults, status, ledger."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from sandbox.auth import make_jwt
from sandbox.exceptions import SandboxClientError

if TYPE_CHECKING:
    from tests.sandbox_fixtures import SandboxHandle

pytestmark = pytest.mark.integration
Body = Callable[..., dict[str, Any]]


def test_accepts_a_valid_call(sandbox: SandboxHandle, make_call_body: Body) -> None:
    body = make_call_body()
    answer = sandbox.make_call(body)
    assert answer.status == 201
    reply = answer.json()
    assert set(reply) == {"requestTimestamp", "messageId", "correlationId", "status"}
    assert reply["status"] == "queued"
    assert reply["correlationId"] == body["to"][0]["correlationId"]
    assert reply["requestTimestamp"][-6] in "+-"  # an offset, as the docs' sample
    ledger = sandbox.client.ledger()
    (entry,) = ledger["requests"]
    assert entry["http_status"] == 201
    assert entry["message_ids"] == [reply["messageId"]]
    assert entry["correlation_ids"] == [reply["correlationId"]]
    assert entry["msisdns"] == ["+14155550123"]
    assert entry["body"] == body


@pytest.mark.parametrize("key", [None, "wrong"])
def test_401_without_body_on_missing_or_wrong_key(
    sandbox: SandboxHandle, make_call_body: Body, key: str | None
) -> None:
    answer = sandbox.make_call(make_call_body(), key=key)
    assert (answer.status, answer.body) == (401, b"")
    assert sandbox.client.summary()["by_status"] == {"401": 1}


def test_jwt_bearer_wins_over_key(sandbox: SandboxHandle, make_call_body: Body) -> None:
    secret = base64.b64encode(b"sandbox-secret").decode()
    token = make_jwt("sandbox-service", secret, time.time())
    ok = sandbox.make_call(make_call_body(), key=None, headers={"Authorization": f"Bearer {token}"})
    assert ok.status == 201
    bad = make_jwt("sandbox-service", base64.b64encode(b"other").decode(), time.time())
    answer = sandbox.make_call(make_call_body(), headers={"Authorization": f"Bearer {bad}"})
    assert answer.status == 401, "a wrong JWT is refused even with the right key"


@pytest.mark.parametrize(
    ("fields", "code", "message"),
    [
        ({"from": None}, "7003", "Mandatory parameter missing: from"),
        ({"channel": "sms"}, "7004", "Invalid parameter - channel"),
        ({"from": "sender"}, "7101", "Invalid sender"),
        ({"to": [{"msisdn": ["12ab"]}]}, "7102", "Invalid destination"),
        ({"content": {"type": "video"}}, "7126", "Invalid content type"),
        ({"sendAt": "2001-01-01T00:00:00+00:00"}, "7005", "Request expired"),
        ({"notifyUrl": "http://x/cb "}, "7004", "Invalid parameter - notifyUrl"),
    ],
)
def test_documented_error_codes(
    sandbox: SandboxHandle, make_call_body: Body, fields: dict[str, Any], code: str, message: str
) -> None:
    answer = sandbox.make_call(make_call_body(**fields))
    assert answer.status == 400
    assert answer.json() == {"code": code, "message": message}
    (entry,) = sandbox.client.ledger()["requests"]
    assert (entry["http_status"], entry["code"]) == (400, code)


def test_text_too_long_too_many_destinations_and_bad_json(
    sandbox_factory: Callable[..., SandboxHandle], make_call_body: Body
) -> None:
    sandbox = sandbox_factory(max_body_bytes=4096, tps=5)
    content = {**make_call_body()["content"], "text": "x" * 2001}
    assert sandbox.make_call(make_call_body(content=content)).json()["code"] == "7107"
    six = [{"msisdn": [f"+1415555010{i}" for i in range(6)]}]
    assert sandbox.make_call(make_call_body(to=six)).json()["code"] == "7009"
    assert sandbox.make_call(raw=b'{"channel": ').json() == {
        "code": "7000",
        "message": "Invalid JSON",
    }
    big = make_call_body(callbackData="x" * 1990, content={"type": "media", "mediaId": "y" * 3000})
    assert sandbox.make_call(big).json()["code"] == "7022"
    assert sandbox.client.summary()["by_code"] == {"7000": 1, "7009": 1, "7022": 1, "7107": 1}


def test_wrong_url_and_method(sandbox: SandboxHandle) -> None:
    assert sandbox.request("POST", "/v2/message", {}).status == 404
    assert sandbox.request("PUT", "/v2/messages", {}).status == 405


def test_repeated_correlation_id_is_409_within_window(
    sandbox_factory: Callable[..., SandboxHandle], make_call_body: Body
) -> None:
    sandbox = sandbox_factory(duplicate_window_seconds=0.3)
    body = make_call_body()
    assert sandbox.make_call(body).status == 201
    again = sandbox.make_call(body)
    assert again.status == 409
    assert again.json()["code"] == "7130"
    deadline = time.monotonic() + 5
    while sandbox.make_call(body).status == 409 and time.monotonic() < deadline:
        time.sleep(0.1)
    cid = body["to"][0]["correlationId"]
    assert sandbox.client.accepted_correlation_ids()[cid] == 2, "accepted again after the window"


def test_tps_limit_answers_429_with_retry_after(
    sandbox_factory: Callable[..., SandboxHandle], make_call_body: Body
) -> None:
    sandbox = sandbox_factory(tps=2, burst=3)
    answers = [sandbox.make_call(make_call_body()) for _ in range(6)]
    throttled = [a for a in answers if a.status == 429]
    assert len([a for a in answers if a.status == 201]) >= 3
    assert throttled, "a burst beyond the bucket is throttled"
    assert throttled[0].json() == {"code": "7020", "message": "Max transaction limit exceeded"}
    assert int(throttled[0].headers["Retry-After"]) >= 1


def test_error_shares_and_runtime_config(sandbox: SandboxHandle, make_call_body: Body) -> None:
    sandbox.client.configure(error_503_rate=1.0)
    assert {sandbox.make_call(make_call_body()).status for _ in range(3)} == {503}
    sandbox.client.configure(error_503_rate=0.0, error_500_rate=1.0)
    assert sandbox.make_call(make_call_body()).status == 500
    sandbox.client.configure(error_500_rate=0.5, seed=3)
    statuses = {sandbox.make_call(make_call_body()).status for _ in range(40)}
    assert statuses == {201, 500}
    summary = sandbox.client.summary()
    assert summary["accepted"] == summary["by_status"]["201"]
    ledger = sandbox.client.ledger()
    assert {r["fault"] for r in ledger["requests"] if r["http_status"] == 500} == {"error_500"}


def test_config_is_validated_and_redacted(sandbox: SandboxHandle) -> None:
    config = sandbox.client.configure(webhook_secret="s3cret", tps=10)
    assert config["webhook_secret"] == "**********"
    assert config["service_key"] == "**********"
    assert config["tps"] == 10
    for bad in (
        {"error_500_rate": 2},
        {"no_such_setting": 1},
        {"error_500_rate": 0.6, "error_503_rate": 0.6},
    ):
        with pytest.raises(SandboxClientError) as info:
            sandbox.client.configure(**bad)
        assert info.value.http_status == 400
    assert sandbox.client.config()["tps"] == 10, "a refused change changes nothing"


def test_service_key_rotation_gives_401_until_fixed(
    sandbox: SandboxHandle, make_call_body: Body
) -> None:
    sandbox.client.configure(service_key="rotated")
    assert sandbox.make_call(make_call_body()).status == 401
    assert sandbox.make_call(make_call_body(), key="rotated").status == 201


def test_latency_and_hang(sandbox: SandboxHandle, make_call_body: Body) -> None:
    sandbox.client.configure(latency_ms=50, latency_distribution="uniform", latency_param_ms=20)
    assert sandbox.make_call(make_call_body()).status == 201
    sandbox.client.configure(latency_ms=0, hang_rate=1.0, hang_seconds=2.0, hang_then="accept")
    body = make_call_body()
    with pytest.raises(TimeoutError):
        sandbox.make_call(body, timeout=0.3)
    cid = body["to"][0]["correlationId"]
    deadline = time.monotonic() + 10
    while not sandbox.client.accepted_correlation_ids()[cid] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox.client.accepted_correlation_ids()[cid] == 1, "accepted after the hang"
    sandbox.client.configure(hang_rate=0.0)
    assert sandbox.make_call(body).status == 409, "the retry after a lost answer is a conflict"
    sandbox.client.configure(hang_rate=1.0, hang_seconds=0.1, hang_then="error")
    assert sandbox.make_call(make_call_body()).status == 503


def test_partial_content_for_multi_destination(
    sandbox: SandboxHandle, make_call_body: Body
) -> None:
    sandbox.client.configure(partial_content_rate=1.0)
    to = [
        {"msisdn": ["+14155550101", "+14155550102"], "correlationId": "multi-a"},
        {"msisdn": ["+14155550103"], "correlationId": "multi-b"},
    ]
    answer = sandbox.make_call(make_call_body(to=to))
    assert answer.status == 206
    results = answer.json()
    assert [r["msisdn"] for r in results] == ["+14155550101", "+14155550102", "+14155550103"]
    statuses = [r["status"] for r in results]
    assert "queued" in statuses
    assert "rejected" in statuses
    for r in results:
        if r["status"] == "rejected":
            assert (r["code"], "messageId" in r) == ("7102", False)
    accepted = sum(sandbox.client.accepted_correlation_ids().values())
    assert accepted == statuses.count("queued")
    sandbox.client.configure(partial_content_rate=0.0)
    to = [{"msisdn": ["+14155550104", "+14155550105"], "correlationId": "multi-c"}]
    full = sandbox.make_call(make_call_body(to=to))
    assert full.status == 201
    assert [r["status"] for r in full.json()] == ["queued", "queued"]


def test_call_status_evolves_and_unknown_is_404(
    sandbox_factory: Callable[..., SandboxHandle], make_call_body: Body
) -> None:
    sandbox = sandbox_factory(
        callbacks=False,
        outcome_answered=1,
        outcome_no_answer=0,
        outcome_busy=0,
        outcome_rejected=0,
        outcome_expired=0,
        irregular_status_sample=False,
    )
    reply = sandbox.make_call(make_call_body(callbackData="cb")).json()
    path = f"/v2/messages/{reply['messageId']}"
    seen = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        status = sandbox.request("GET", path).json()
        seen.append(status["status"])
        if status["status"] == "Completed":
            break
        time.sleep(0.002)
    assert seen[-1] == "Completed"
    assert set(seen) <= {"Initiated", "Ringing", "In-progress", "Completed"}
    assert status["messageId"] == reply["messageId"]
    assert status["correlationId"] == reply["correlationId"]
    assert status["callbackData"] == "cb"
    assert status["answeredAt"].endswith("+05:30")
    assert status["endedAt"].endswith("+05:30")
    assert sandbox.request("GET", "/v2/messages/nope").status == 404
    assert sandbox.request("GET", path, key="wrong").status == 401


def test_ledger_reset_and_exactly_once_counts(sandbox: SandboxHandle, make_call_body: Body) -> None:
    bodies = [make_call_body() for _ in range(5)]
    for body in bodies:
        sandbox.make_call(body)
    sandbox.make_call(bodies[0])
    counts = sandbox.client.accepted_correlation_ids()
    assert len(counts) == 5
    assert set(counts.values()) == {1}
    summary = sandbox.client.summary()
    assert summary["by_status"] == {"201": 5, "409": 1}
    assert summary["duplicated_correlation_ids"] == []
    assert len(sandbox.client.ledger(since=5)["requests"]) == 1
    sandbox.client.reset()
    assert sandbox.client.ledger()["requests"] == []
    assert sandbox.make_call(bodies[0]).status == 201, "reset forgets the duplicate window"


def test_reset_with_config_restores_startup_behaviour(sandbox: SandboxHandle) -> None:
    sandbox.client.configure(error_503_rate=1.0)
    sandbox.client.reset(config=True)
    assert sandbox.client.config()["error_503_rate"] == 0.0


def test_same_seed_same_message_ids_whatever_the_order(
    sandbox_factory: Callable[..., SandboxHandle], make_call_body: Body
) -> None:
    bodies = [make_call_body() for _ in range(4)]
    first = sandbox_factory(seed=11, callbacks=False)
    second = sandbox_factory(seed=11, callbacks=False)
    ids_a = {b["to"][0]["correlationId"]: first.make_call(b).json()["messageId"] for b in bodies}
    ids_b = {
        b["to"][0]["correlationId"]: second.make_call(b).json()["messageId"]
        for b in reversed(bodies)
    }
    assert ids_a == ids_b
