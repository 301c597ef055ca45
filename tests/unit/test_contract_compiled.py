"""The compiled encoders write exactly fastavro's bytes; anything unexpected falls back to it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from callstream.contracts import call_event_codec, dispatch_result_codec
from consumers.dispatcher.keyed_locks import KeyedLocks
from consumers.dispatcher.results import Source, call_event, dispatch_result

OUTCOMES = ["QUEUED", "REJECTED", "INVALID", "EXPIRED", "DUPLICATE", "FAILED"]


def results() -> list[dict]:
    out = []
    for n, outcome in enumerate(OUTCOMES):
        for variant in range(4):
            out.append(
                dispatch_result(
                    correlation_id=f"corr-{n}-{variant}" + "é" * variant,
                    outcome=outcome,  # type: ignore[arg-type]
                    msisdn="+14155550100" if variant else "",
                    requested_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
                    - timedelta(days=40_000 * variant),
                    attempts=variant * 1000,
                    source=Source("calls.requests", variant, 2**40 * variant + n),
                    http_status=[None, 201, 409, 503][variant],
                    message_id=None if variant % 2 else f"msg-{n}",
                    platform_code=[None, "7102", "x", ""][variant],
                    description=[None, "", "d" * 300, "ünïcode"][variant],
                    attributes=[{}, {"a": "b"}, {f"k{i}": "v" * i for i in range(70)}, {"": ""}][
                        variant
                    ],
                    callback_data=[None, "cb", "", "x" * 5000][variant],
                )
            )
    return out


@pytest.mark.parametrize("record", results())
def test_result_and_event_bytes_match_fastavro(record: dict) -> None:
    rcodec, ecodec = dispatch_result_codec(), call_event_codec()
    assert rcodec.encode(record) == rcodec.encode_fastavro(record)
    event = call_event(record, Source("calls.requests", 1, 2))  # type: ignore[arg-type]
    assert ecodec.encode(event) == ecodec.encode_fastavro(event)
    assert rcodec.decode(rcodec.encode(record))["correlation_id"] == record["correlation_id"]


def test_unexpected_values_fall_back_to_fastavro() -> None:
    codec = dispatch_result_codec()
    odd = {**results()[5], "attempts": True}  # a bool where an int is due: fastavro decides
    assert codec.encode(odd) == codec.encode_fastavro(odd)
    with pytest.raises(Exception):  # noqa: B017  (fastavro's own error, whatever it is)
        codec.encode({**odd, "outcome": "NOT_A_SYMBOL"})


async def test_keyed_locks_waiter_cancelled_then_key_forgotten() -> None:
    locks = KeyedLocks()
    order: list[str] = []

    async def hold(name: str, delay: float) -> None:
        async with locks.hold("k"):
            order.append(f"{name}+")
            await asyncio.sleep(delay)
            order.append(f"{name}-")

    first = asyncio.create_task(hold("1", 0.05))
    await asyncio.sleep(0)
    second = asyncio.create_task(hold("2", 0))
    third = asyncio.create_task(hold("3", 0))
    await asyncio.sleep(0.01)
    second.cancel()
    await asyncio.gather(first, second, third, return_exceptions=True)
    assert order == ["1+", "1-", "3+", "3-"]
    assert len(locks) == 0
    async with locks.hold("k"):  # uncontended again: no lock object
        assert len(locks) == 1
    assert len(locks) == 0
