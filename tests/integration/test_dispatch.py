"""The dispatcher in-process against the real Kafka broker and the real sandbox platform.

Each test proves its claim from the sandbox's ledger (what the platform received and accepted)
and by reading every topic to its end (results, events, DLQ), never from logs.
"""

from __future__ import annotations

import asyncio
import random
import time
import urllib.error
import urllib.request
from collections import Counter

import pytest

from callstream.contracts import call_request_codec
from tests.integration.test_dispatch_support import (
    Platform,
    Topics,
    call_request,
    dispatch_settings,
    dispatch_topics,
    encode,
    outcome_count,
    platform,
    publish,
    read_outputs,
    run_dispatcher,
    wait_until,
)

__all__ = ["dispatch_topics", "platform"]
pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def _poison(rng: random.Random, i: int) -> bytes:
    kind = i % 6
    if kind == 0:
        return rng.randbytes(rng.randint(1, 300))  # random bytes
    if kind == 1:
        return encode({"unexpected": "schema", "n": i})  # JSON of another schema
    if kind == 2:
        return encode(call_request(f"poison-{i}", i, msisdn="12345"))  # not E.164
    if kind == 3:
        return encode(call_request(f"poison-{i}", i, caller_id="+0999"))  # bad caller id
    if kind == 4:
        return b"\xc3\x01" + rng.randbytes(8) + rng.randbytes(40)  # unknown Avro fingerprint
    return encode(call_request(f"poison-{i}", i, callback_data="x" * 2001))  # too long


async def test_mixed_records_poison_expired_and_duplicates(
    kafka_bootstrap: str, dispatch_topics: Topics, platform: Platform, group_id: str
) -> None:
    """2,000 mixed records: every valid id called exactly once; one result and one event per
    record; poison records in the DLQ with their reasons; expired never called; an id published
    twice called once, its second record DUPLICATE."""
    rng = random.Random(42)
    codec = call_request_codec()
    now_ms = int(time.time() * 1000)
    records: list[tuple[bytes | None, bytes]] = []
    expect: dict[bytes, str] = {}  # key -> expected outcome of its (first) record
    duplicated: list[bytes] = []
    for i in range(2000):
        cid = f"mix-{i}"
        key = cid.encode()
        if i % 10 == 3:  # 200 poison records
            key = f"poison-{i}".encode()
            records.append((key, _poison(rng, i)))
            expect[key] = "INVALID"
        elif i % 25 == 7:  # 80 expired
            records.append((key, encode(call_request(cid, i, expires_at=now_ms - 60_000))))
            expect[key] = "EXPIRED"
        elif i % 40 == 11:  # 50 published twice (the copy goes in later)
            records.append((key, encode(call_request(cid, i))))
            duplicated.append(key)
            expect[key] = "QUEUED"
        elif i % 3 == 0:  # some as Avro single-object encoding
            records.append((key, codec.encode(codec.from_obj(call_request(cid, i)))))
            expect[key] = "QUEUED"
        else:
            records.append((key, encode(call_request(cid, i))))
            expect[key] = "QUEUED"
        if i % 40 == 39 and duplicated:
            dup = duplicated.pop(0)
            records.append((dup, encode(call_request(dup.decode(), 1))))
    for dup in duplicated:
        records.append((dup, encode(call_request(dup.decode(), 1))))
    publish(kafka_bootstrap, dispatch_topics.requests, records)

    settings = dispatch_settings(kafka_bootstrap, dispatch_topics, platform, group_id)
    async with run_dispatcher(settings) as service:
        await wait_until(lambda: outcome_count(service) >= len(records), 150, "all outcomes")
    out = read_outputs(kafka_bootstrap, dispatch_topics)

    out.assert_one_result_and_event_per_request(dispatch_topics.requests)
    accepted = platform.client.accepted_correlation_ids()
    called = {k.decode() for k, v in expect.items() if v == "QUEUED"}
    assert set(accepted) == called, "the platform was called for exactly the valid ids"
    assert set(accepted.values()) == {1}, "each valid id called exactly once"

    by_source = out.results_by_source()
    seen: Counter[bytes] = Counter()
    for req in sorted(out.requests, key=lambda r: (r.partition, r.offset)):
        assert req.key is not None
        (result,) = by_source[(req.partition, req.offset)]
        seen[req.key] += 1
        want = expect[req.key] if seen[req.key] == 1 else "DUPLICATE"
        assert result["outcome"] == want, (req.key, result)
        assert result["correlation_id"] == req.key.decode()
    assert sum(1 for v in seen.values() if v == 2) == 50

    poison = {k for k, v in expect.items() if v == "INVALID"}
    assert {r.key for r in out.dlq} == poison
    originals = {(r.key, r.value) for r in out.requests}
    for dead in out.dlq:
        assert (dead.key, dead.value) in originals, "DLQ keeps the original bytes"
        assert dead.headers["error.stage"] == b"decode"
        assert dead.headers["original.topic"] == dispatch_topics.requests.encode()
        assert dead.headers["error.message"]
        value = dead.value
        if b"12345" in value and b'"msisdn":"12345"' in value:
            assert b"msisdn" in dead.headers["error.reasons"]
    assert not out.retry


async def test_platform_503_for_a_while_then_recovers(
    kafka_bootstrap: str, dispatch_topics: Topics, platform: Platform, group_id: str
) -> None:
    """503 on everything, then healthy: nothing lost, nothing dead-lettered, retries went
    through memory and the retry topic, every id called once."""
    platform.client.configure(error_503_rate=1.0)
    n = 200
    publish(
        kafka_bootstrap,
        dispatch_topics.requests,
        [(f"r503-{i}".encode(), encode(call_request(f"r503-{i}", i))) for i in range(n)],
    )
    settings = dispatch_settings(
        kafka_bootstrap, dispatch_topics, platform, group_id, dispatch_max_attempts=1000
    )
    async with run_dispatcher(settings) as service:
        retries = service.metrics.retries
        await wait_until(
            lambda: (
                retries.labels("topic")._value.get() >= n
                and retries.labels("memory")._value.get() >= n
            ),
            60,
            "retries in memory and via the retry topic",
        )
        assert outcome_count(service) == 0
        platform.client.configure(error_503_rate=0.0)
        await wait_until(lambda: outcome_count(service) >= n, 120, "all outcomes")
    out = read_outputs(kafka_bootstrap, dispatch_topics)
    out.assert_one_result_and_event_per_request(dispatch_topics.requests)
    assert {r["outcome"] for r in out.results} == {"QUEUED"}
    assert not out.dlq
    assert out.retry, "long waits went through the retry topic"
    summary = platform.client.summary()
    assert summary["by_status"].get("503", 0) >= 2 * n
    assert set(summary["accepted_by_correlation_id"].values()) == {1}
    assert len(summary["accepted_by_correlation_id"]) == n


async def test_429_with_retry_after_adapts_the_rate(
    kafka_bootstrap: str, dispatch_topics: Topics, platform: Platform, group_id: str
) -> None:
    """A TPS limit on the platform: the dispatcher (no configured rate) gets 429s with
    Retry-After, lowers its rate, and dispatches everything once."""
    platform.client.configure(tps=25.0)
    n = 150
    publish(
        kafka_bootstrap,
        dispatch_topics.requests,
        [(f"r429-{i}".encode(), encode(call_request(f"r429-{i}", i))) for i in range(n)],
    )
    settings = dispatch_settings(kafka_bootstrap, dispatch_topics, platform, group_id)
    async with run_dispatcher(settings) as service:
        await wait_until(lambda: outcome_count(service) >= n, 150, "all outcomes")
        lowest = service.limiter.lowest_rate
        assert lowest is not None, "the rate was lowered"
    out = read_outputs(kafka_bootstrap, dispatch_topics)
    out.assert_one_result_and_event_per_request(dispatch_topics.requests)
    assert {r["outcome"] for r in out.results} == {"QUEUED"}
    assert not out.dlq
    summary = platform.client.summary()
    throttled = summary["by_status"].get("429", 0)
    assert throttled > 0, "the platform did throttle"
    assert throttled < n, "the dispatcher slowed down instead of hammering"
    print(f"429 answers: {throttled}, lowest rate: {lowest:.1f}/s")
    assert set(summary["accepted_by_correlation_id"].values()) == {1}
    assert len(summary["accepted_by_correlation_id"]) == n


async def test_hanging_requests_are_retried_without_loss(
    kafka_bootstrap: str, dispatch_topics: Topics, platform: Platform, group_id: str
) -> None:
    """Some requests hang past the client timeout, then the platform accepts them anyway (the
    classic ambiguous failure). Retried; the platform's own 409 stops a second call; the result
    is QUEUED (a 409 after a lost answer means our earlier attempt was accepted)."""
    platform.client.configure(
        hang_rate=0.2, hang_seconds=2.5, hang_then="accept", duplicate_window_seconds=86_400
    )
    n = 100
    publish(
        kafka_bootstrap,
        dispatch_topics.requests,
        [(f"hang-{i}".encode(), encode(call_request(f"hang-{i}", i))) for i in range(n)],
    )
    settings = dispatch_settings(
        kafka_bootstrap, dispatch_topics, platform, group_id, dispatch_request_timeout_s=1.0
    )
    async with run_dispatcher(settings) as service:
        await wait_until(lambda: outcome_count(service) >= n, 150, "all outcomes")
    out = read_outputs(kafka_bootstrap, dispatch_topics)
    out.assert_one_result_and_event_per_request(dispatch_topics.requests)
    assert {r["outcome"] for r in out.results} == {"QUEUED"}
    assert any(r["attempts"] > 1 for r in out.results), "some requests were retried"
    assert not out.dlq
    summary = platform.client.summary()
    assert set(summary["accepted_by_correlation_id"].values()) == {1}
    assert len(summary["accepted_by_correlation_id"]) == n


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


async def test_401_pauses_everything_then_all_dispatched_when_fixed(
    kafka_bootstrap: str, dispatch_topics: Topics, platform: Platform, group_id: str
) -> None:
    """A wrong service key: dispatching pauses (readyz 503), nothing is dead-lettered or given a
    result; once the key is right again, everything is dispatched exactly once."""
    platform.client.configure(service_key="rotated-key")
    n = 100
    publish(
        kafka_bootstrap,
        dispatch_topics.requests,
        [(f"r401-{i}".encode(), encode(call_request(f"r401-{i}", i))) for i in range(n)],
    )
    settings = dispatch_settings(kafka_bootstrap, dispatch_topics, platform, group_id)
    async with run_dispatcher(settings) as service:
        await wait_until(lambda: service.pause.paused, 60, "pause on 401")
        base = f"http://127.0.0.1:{service.health_port}"
        await wait_until(
            lambda: platform.client.summary()["by_status"].get("401", 0) >= 3, 30, "probes"
        )
        status, body = await asyncio.to_thread(_get, base + "/readyz")
        assert status == 503, body
        assert (await asyncio.to_thread(_get, base + "/healthz"))[0] == 200
        _, metrics = await asyncio.to_thread(_get, base + "/metrics")
        assert b"callstream_dispatch_platform_paused 1.0" in metrics
        assert outcome_count(service) == 0
        summary = platform.client.summary()
        assert summary["accepted"] == 0
        probes = summary["by_status"]["401"]
        assert probes < n, "while paused only the prober calls the platform"
        platform.client.configure(service_key="sandbox-key")
        await wait_until(lambda: outcome_count(service) >= n, 120, "all outcomes")
        assert (await asyncio.to_thread(_get, base + "/readyz"))[0] == 200
    out = read_outputs(kafka_bootstrap, dispatch_topics)
    out.assert_one_result_and_event_per_request(dispatch_topics.requests)
    assert {r["outcome"] for r in out.results} == {"QUEUED"}
    assert not out.dlq
    summary = platform.client.summary()
    assert set(summary["accepted_by_correlation_id"].values()) == {1}
    assert len(summary["accepted_by_correlation_id"]) == n
