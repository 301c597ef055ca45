"""Callbacks over real HTTP: documented sequences and irregularities, receipts filtering,
signatures, retries, ledger, determinism. A local receiver plays the notifyUrl."""

from __future__ import annotations

import hashlib
import hmac
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
import pytest

if TYPE_CHECKING:
    from tests.sandbox_fixtures import ReceiverHandle, SandboxHandle

pytestmark = pytest.mark.integration
Body = Callable[..., dict[str, Any]]
Factory = Callable[..., "SandboxHandle"]
ONLY = dict.fromkeys(
    (
        "outcome_answered",
        "outcome_no_answer",
        "outcome_busy",
        "outcome_rejected",
        "outcome_expired",
    ),
    0.0,
)
INFO_KEYS = {
    "timeStamp",
    "Description",
    "code",
    "deliveryChannel",
    "additionalInfo",
    "destination",
    "destinationType",
    "deliveryStatus",
}


def only(outcome: str) -> dict[str, float]:
    return {**ONLY, f"outcome_{outcome}": 1.0}


def by_message(bodies: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for body in bodies:
        out[body["deliveryInfoNotification"]["transid"]].append(body)
    return out


def place(
    sandbox: SandboxHandle,
    receiver: ReceiverHandle,
    make_call_body: Body,
    n: int = 1,
    **fields: Any,
) -> list[str]:
    ids = []
    for _ in range(n):
        answer = sandbox.make_call(make_call_body(notifyUrl=receiver.url, **fields))
        assert answer.status == 201
        ids.append(answer.json()["messageId"])
    return ids


def settle(sandbox: SandboxHandle, expected: int) -> list[dict[str, Any]]:
    """Wait until every callback was delivered or given up; at least ``expected`` of them."""
    assert sandbox.client.wait_idle(timeout=15)["callback_tasks"] == 0
    callbacks: list[dict[str, Any]] = sandbox.client.ledger()["callbacks"]
    assert all(c["state"] != "pending" for c in callbacks)
    assert len(callbacks) >= expected
    return callbacks


def test_answered_call_body_shape(
    sandbox_factory: Factory, callback_receiver: ReceiverHandle, make_call_body: Body
) -> None:
    sandbox = sandbox_factory(**only("answered"), seed=1)
    (mid,) = place(sandbox, callback_receiver, make_call_body, callbackData="my-data")
    callbacks = settle(sandbox, 5)
    received = callback_receiver.wait_for(len(callbacks))
    # sent in plan order; the receiver may see them in another (separate POSTs)
    bodies = [c["body"] for c in callbacks]
    assert sorted(r.body for r in received) == sorted(c["raw"].encode() for c in callbacks)
    statuses = [b["deliveryInfoNotification"]["deliveryInfo"]["deliveryStatus"] for b in bodies]
    assert statuses[:3] == ["OFFERED", "ACCEPTED", "ANSWERED"]
    assert {"DROPPED", "Released"} <= set(statuses[3:])
    for body in bodies:
        note = body["deliveryInfoNotification"]
        assert set(note["deliveryInfo"]) == INFO_KEYS
        assert note["transid"] == mid
        assert note["deliveryInfo"]["deliveryChannel"] == "voice"
        assert note["deliveryInfo"]["destinationType"] == "msisdn"
        assert note["deliveryInfo"]["destination"].lstrip("+") == "14155550123"
        values = [*note["deliveryInfo"].values(), note["subtid"], note["transid"]]
        assert all(isinstance(v, str) for v in values), "every value a string"
        if note["deliveryInfo"]["deliveryStatus"] not in (
            "DISCONNECTED",
            "TROMBONE_CONNECTED",
            "TROMBONE_RELEASED",
        ):
            assert note["callbackData"] == "my-data"
            assert note["correlationid"].startswith("cid-")
    codes = {b["deliveryInfoNotification"]["deliveryInfo"]["code"] for b in bodies}
    assert {"7407", "7408", "7519", "7409", "7405"} <= codes
    dropped = [b for b in bodies if "deliveryTransInfo" in b]
    assert dropped
    assert all(
        b["deliveryInfoNotification"]["deliveryInfo"]["deliveryStatus"] == "DROPPED"
        for b in dropped
    )
    for r in received:
        assert r.headers["Content-Type"] == "application/json"
        assert "x-hub-signature" not in {k.lower() for k in r.headers}


@pytest.mark.parametrize(("outcome", "code"), [("no_answer", "7401"), ("busy", "7402")])
def test_unanswered_sequences(
    sandbox_factory: Factory,
    callback_receiver: ReceiverHandle,
    make_call_body: Body,
    outcome: str,
    code: str,
) -> None:
    sandbox = sandbox_factory(**only(outcome))
    place(sandbox, callback_receiver, make_call_body)
    bodies = [c["body"] for c in settle(sandbox, 4)]  # plan order
    assert len(callback_receiver.wait_for(4)) == 4
    infos = [b["deliveryInfoNotification"]["deliveryInfo"] for b in bodies]
    assert [i["deliveryStatus"] for i in infos[:2]] == ["OFFERED", "ACCEPTED"]
    assert sorted(i["deliveryStatus"] for i in infos[2:]) == ["DROPPED", "REJECTED"]
    rejected = next(i for i in infos if i["deliveryStatus"] == "REJECTED")
    assert rejected["code"] == code
    assert infos[2]["timeStamp"] == infos[3]["timeStamp"], "simultaneous events share a timestamp"


def test_expired_is_failed_7005(
    sandbox_factory: Factory, callback_receiver: ReceiverHandle, make_call_body: Body
) -> None:
    sandbox = sandbox_factory(**only("expired"))
    place(sandbox, callback_receiver, make_call_body)
    settle(sandbox, 1)
    (body,) = [r.json() for r in callback_receiver.wait_for(1)]
    info = body["deliveryInfoNotification"]["deliveryInfo"]
    assert (info["deliveryStatus"], info["code"], info["Description"]) == (
        "Failed",
        "7005",
        "Request expired",
    )


def test_irregularities_all_occur(
    sandbox_factory: Factory, callback_receiver: ReceiverHandle, make_call_body: Body
) -> None:
    sandbox = sandbox_factory(
        seed=5,
        outcome_answered=1,
        outcome_busy=1,
        outcome_no_answer=0,
        outcome_rejected=0,
        outcome_expired=0,
    )
    place(sandbox, callback_receiver, make_call_body, n=40)
    callbacks = settle(sandbox, 40 * 4)
    assert all(c["delivered"] for c in callbacks)
    bodies = [orjson.loads(c["raw"]) for c in callbacks]
    stamps = [b["deliveryInfoNotification"]["deliveryInfo"]["timeStamp"] for b in bodies]
    assert any(s.endswith("Z") for s in stamps)
    assert any(s[-6] in "+-" and s[-3] == ":" for s in stamps)
    assert any(len(s) == 23 for s in stamps), "no zone at all"
    destinations = {b["deliveryInfoNotification"]["deliveryInfo"]["destination"] for b in bodies}
    assert destinations == {"+14155550123", "14155550123"}
    statuses = {b["deliveryInfoNotification"]["deliveryInfo"]["deliveryStatus"] for b in bodies}
    assert {"Released", "DISCONNECTED"} <= statuses
    for b in bodies:
        note = b["deliveryInfoNotification"]
        if note["deliveryInfo"]["deliveryStatus"] in (
            "DISCONNECTED",
            "TROMBONE_CONNECTED",
            "TROMBONE_RELEASED",
        ):
            assert "correlationid" not in note
            assert "callbackData" not in note
    last_two = set()
    for events in by_message(bodies).values():
        if len(events) == 4:
            last_two.add(
                tuple(
                    e["deliveryInfoNotification"]["deliveryInfo"]["deliveryStatus"]
                    for e in events[2:]
                )
            )
    assert last_two == {("DROPPED", "REJECTED"), ("REJECTED", "DROPPED")}, (
        "simultaneous events in any order"
    )


def test_irregularities_can_be_turned_off(
    sandbox_factory: Factory, callback_receiver: ReceiverHandle, make_call_body: Body
) -> None:
    sandbox = sandbox_factory(
        **only("answered"),
        irregular_timestamps=False,
        irregular_destination=False,
        irregular_missing_ids=False,
        irregular_order=False,
    )
    place(sandbox, callback_receiver, make_call_body, n=5)
    callbacks = settle(sandbox, 5 * 4)
    for c in callbacks:
        note = c["body"]["deliveryInfoNotification"]
        assert note["deliveryInfo"]["timeStamp"].endswith("Z")
        assert note["deliveryInfo"]["destination"] == "+14155550123"
        assert "correlationid" in note


def test_requested_receipts_filter(
    sandbox_factory: Factory, callback_receiver: ReceiverHandle, make_call_body: Body
) -> None:
    sandbox = sandbox_factory(**only("busy"))
    place(sandbox, callback_receiver, make_call_body, requestedReceipts=["offered", "REJECTED"])
    callbacks = settle(sandbox, 2)
    sandbox.make_call(make_call_body(notifyUrl=callback_receiver.url, requestedReceipts=[]))
    events = sorted(c["deliveryStatus"] for c in callbacks)
    assert events == ["OFFERED", "REJECTED"]
    assert len(callback_receiver.wait_for(2)) == 2


def test_hmac_signature_and_auth_header(
    sandbox_factory: Factory, callback_receiver: ReceiverHandle, make_call_body: Body
) -> None:
    sandbox = sandbox_factory(
        **only("expired"),
        webhook_secret="topsecret",
        webhook_auth_header="X-Api-Key",
        webhook_auth_value="k1",
    )
    place(sandbox, callback_receiver, make_call_body)
    settle(sandbox, 1)
    (received,) = callback_receiver.wait_for(1)
    expected = hmac.new(b"topsecret", received.body, hashlib.sha256).hexdigest()
    assert received.headers["x-hub-signature"] == expected
    assert received.headers["X-Api-Key"] == "k1"
    sandbox.client.configure(webhook_signature_prefix="sha256=")
    place(sandbox, callback_receiver, make_call_body)
    callback_receiver.wait_for(2)
    assert callback_receiver.received[1].headers["x-hub-signature"].startswith("sha256=")


@pytest.mark.parametrize("status", [500, 503, 429, 401, 403])
def test_retried_statuses(
    sandbox_factory: Factory, callback_receiver: ReceiverHandle, make_call_body: Body, status: int
) -> None:
    sandbox = sandbox_factory(**only("expired"))
    callback_receiver.respond_with(status, status)
    place(sandbox, callback_receiver, make_call_body)
    (callback,) = settle(sandbox, 1)
    assert [a["status"] for a in callback["attempts"]] == [status, status, 200]
    assert callback["state"] == "delivered"
    assert callback["delivered"] is True


@pytest.mark.parametrize("status", [201, 204, 302, 400, 404, 410])
def test_final_statuses_are_not_retried(
    sandbox_factory: Factory, callback_receiver: ReceiverHandle, make_call_body: Body, status: int
) -> None:
    sandbox = sandbox_factory(**only("expired"))
    callback_receiver.respond_with(status)
    place(sandbox, callback_receiver, make_call_body)
    (callback,) = settle(sandbox, 1)
    assert [a["status"] for a in callback["attempts"]] == [status]
    assert callback["state"] == ("delivered" if status < 300 else "refused")


def test_retries_exhausted_and_unreachable(
    sandbox_factory: Factory, callback_receiver: ReceiverHandle, make_call_body: Body
) -> None:
    sandbox = sandbox_factory(**only("expired"), callback_retries=2)
    callback_receiver.respond_with(500, 500, 500)
    place(sandbox, callback_receiver, make_call_body)
    (callback,) = settle(sandbox, 1)
    assert [a["status"] for a in callback["attempts"]] == [500, 500, 500]
    assert callback["state"] == "failed"
    sandbox.client.reset()
    sandbox.make_call(make_call_body(notifyUrl="http://127.0.0.1:9/nothing-listens"))
    (callback,) = settle(sandbox, 1)
    assert len(callback["attempts"]) == 3
    assert all(a["status"] is None and a["error"] for a in callback["attempts"])
    assert sandbox.client.summary()["callbacks_by_state"] == {"failed": 1}


def test_timeout_is_retried(
    sandbox_factory: Factory, callback_receiver: ReceiverHandle, make_call_body: Body
) -> None:
    sandbox = sandbox_factory(**only("expired"), callback_timeout_seconds=0.2, callback_retries=1)
    callback_receiver.receiver.delay_seconds = 0.5
    place(sandbox, callback_receiver, make_call_body)
    (callback,) = settle(sandbox, 1)
    assert [a["status"] for a in callback["attempts"]] == [None, None]
    assert "Timeout" in callback["attempts"][0]["error"]


def test_default_notify_url_and_callbacks_off(
    sandbox_factory: Factory, callback_receiver: ReceiverHandle, make_call_body: Body
) -> None:
    sandbox = sandbox_factory(**only("expired"), default_notify_url=callback_receiver.url)
    assert sandbox.make_call(make_call_body()).status == 201
    settle(sandbox, 1)
    assert len(callback_receiver.wait_for(1)) == 1
    sandbox.client.configure(callbacks=False)
    sandbox.make_call(make_call_body())
    assert len(sandbox.client.ledger()["callbacks"]) == 1


def test_same_seed_same_outcomes(
    sandbox_factory: Factory, callback_receiver: ReceiverHandle, make_call_body: Body
) -> None:
    bodies = [make_call_body(notifyUrl=callback_receiver.url) for _ in range(12)]

    def outcomes(sandbox: SandboxHandle, order: list[dict[str, Any]]) -> dict[str, list[str]]:
        for body in order:
            assert sandbox.make_call(body).status == 201
        callbacks = settle(sandbox, len(order))
        out: dict[str, list[str]] = defaultdict(list)
        for c in callbacks:
            out[c["correlation_id"]].append(c["code"])
        return {k: sorted(v) for k, v in out.items()}

    first = outcomes(sandbox_factory(seed=42), bodies)
    second = outcomes(sandbox_factory(seed=42), list(reversed(bodies)))
    assert first == second
    assert len({tuple(v) for v in first.values()}) > 1, "the mix gives different outcomes"


def test_callbacks_to_hosts_outside_the_allow_list_are_never_sent(
    sandbox_factory: Factory, callback_receiver: ReceiverHandle, make_call_body: Body
) -> None:
    """Loopback only by default: a notifyUrl naming another host is recorded, not called. The
    host is under .invalid (RFC 2606), so even a broken check could not reach anything."""
    sandbox = sandbox_factory(**only("answered"))
    answer = sandbox.make_call(make_call_body(notifyUrl="http://callbacks.invalid/cb"))
    assert answer.status == 201
    callbacks = settle(sandbox, expected=1)
    assert {c["state"] for c in callbacks} == {"blocked"}
    assert all(len(c["attempts"]) == 1 for c in callbacks)
    assert all(c["attempts"][0]["status"] is None for c in callbacks)
    assert sandbox.client.summary()["callbacks_by_state"]["blocked"] == len(callbacks)
    # the same sandbox still calls a loopback receiver
    place(sandbox, callback_receiver, make_call_body)
    assert callback_receiver.wait_for(1)
