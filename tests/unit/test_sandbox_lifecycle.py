"""Call lifecycles: documented sequences, codes, irregularities, status, determinism."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from sandbox.lifecycle import (
    CallPlan,
    destination_form,
    format_timestamp,
    message_id,
    message_rng,
    plan_call,
)
from sandbox.settings import OUTCOMES


def plan(seed: int, outcome: str | None = None, irregular: bool = True) -> CallPlan:
    weights = tuple(1.0 if outcome in (None, o) else 0.0 for o in OUTCOMES)
    return plan_call(
        random.Random(seed),
        weights=weights,
        delay_ms=(1.0, 5.0),
        irregular_timestamps=irregular,
        irregular_destination=irregular,
        irregular_order=irregular,
    )


def statuses(p: CallPlan) -> list[list[str]]:
    return [[k.delivery_status for k in step] for step in p.steps]


@pytest.mark.parametrize(
    ("outcome", "code"),
    [("no_answer", {"7401"}), ("busy", {"7402"}), ("rejected", {"7406", "7404"})],
)
def test_unanswered_sequences(outcome: str, code: set[str]) -> None:
    for seed in range(20):
        p = plan(seed, outcome)
        steps = statuses(p)
        assert steps[:2] == [["OFFERED"], ["ACCEPTED"]]
        assert sorted(steps[2]) == ["DROPPED", "REJECTED"]
        rejected = next(k for k in p.steps[2] if k.delivery_status == "REJECTED")
        assert rejected.code in code


def test_answered_sequences_cover_all_endings() -> None:
    endings = set()
    for seed in range(200):
        p = plan(seed, "answered")
        endings.add(p.ending)
        steps = statuses(p)
        assert steps[:3] == [["OFFERED"], ["ACCEPTED"], ["ANSWERED"]]
        if p.ending == "normal":
            assert sorted(steps[3]) == ["DROPPED", "Released"]
        else:
            assert sorted(steps[-1]) == ["DISCONNECTED", "DROPPED", "Released"]
        if p.ending == "trombone":
            assert steps[3:5] == [["TROMBONE_CONNECTED"], ["TROMBONE_RELEASED"]]
    assert endings == {"normal", "hangup", "trombone"}


def test_expired_is_failed_7005() -> None:
    p = plan(1, "expired")
    assert [(k.code, k.delivery_status) for k in p.steps[0]] == [("7005", "Failed")]
    assert p.status_at(1e9, sample_case=False) == "Failed"


def test_simultaneous_events_come_in_both_orders() -> None:
    orders = {tuple(statuses(plan(seed, "busy"))[2]) for seed in range(50)}
    assert orders == {("DROPPED", "REJECTED"), ("REJECTED", "DROPPED")}
    fixed = {tuple(statuses(plan(seed, "busy", irregular=False))[2]) for seed in range(50)}
    assert len(fixed) == 1


def test_status_evolves() -> None:
    p = plan(3, "answered")
    assert p.status_at(-1, sample_case=False) == "Initiated"
    assert p.status_at(p.offsets_ms[1], sample_case=False) == "Ringing"
    assert p.status_at(p.offsets_ms[2], sample_case=False) == "In-progress"
    assert p.status_at(p.offsets_ms[2], sample_case=True) == "ANSWERED"
    assert p.status_at(p.duration_ms, sample_case=False) == "Completed"
    assert plan(3, "busy").status_at(1e9, sample_case=False) == "Busy"
    assert plan(3, "no_answer").status_at(1e9, sample_case=False) == "No-answer"


def test_timestamp_styles() -> None:
    moment = datetime(2024, 9, 5, 4, 3, 1, 708000, tzinfo=UTC)
    assert format_timestamp(moment, "Z", 0) == "2024-09-05T04:03:01.708Z"
    assert format_timestamp(moment, "offset", 330) == "2024-09-05T09:33:01.708+05:30"
    assert format_timestamp(moment, "naive", 0) == "2024-09-05T04:03:01.708"


def test_all_timestamp_styles_and_destination_forms_occur() -> None:
    plans = [plan(seed) for seed in range(100)]
    assert {p.ts_style for p in plans} == {"Z", "offset", "naive"}
    assert {p.destination_plus for p in plans} == {True, False}
    assert {plan(s, irregular=False).ts_style for s in range(20)} == {"Z"}


def test_destination_form() -> None:
    assert destination_form("+14155550123", False) == "14155550123"
    assert destination_form("14155550123", True) == "+14155550123"
    assert destination_form("14155550123", None) == "14155550123"


def test_same_seed_same_destination_same_call() -> None:
    a = message_rng(7, "cid", "+1415", 1)
    b = message_rng(7, "cid", "+1415", 1)
    assert message_id(a) == message_id(b)
    assert message_id(message_rng(7, "cid", "+1415", 2)) != message_id(
        message_rng(7, "cid", "+1415", 1)
    )


def test_callback_host_allow_list() -> None:
    from sandbox.callbacks import host_allowed

    loopback = "127.0.0.1,localhost,::1"
    assert host_allowed("http://127.0.0.1:8080/callbacks", loopback)
    assert host_allowed("http://LOCALHOST/cb", loopback)
    assert host_allowed("http://[::1]:9/cb", loopback)
    assert not host_allowed("https://hooks.example.com/cb", loopback)
    assert not host_allowed("http://127.0.0.1.example.com/cb", loopback)
    assert not host_allowed("not a url", loopback)
    assert host_allowed("https://hooks.example.com/cb", "*")
    assert not host_allowed("http://127.0.0.1/cb", "")
