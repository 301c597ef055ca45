"""Smoke: a handful of requests end QUEUED, each called once."""

from __future__ import annotations

import pytest

from callstream.contracts import dispatch_result_codec
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
    read_topic,
    run_dispatcher,
    wait_until,
)

__all__ = ["dispatch_topics", "platform"]
pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_smoke(
    kafka_bootstrap: str, dispatch_topics: Topics, platform: Platform, group_id: str
) -> None:
    records = [(f"s-{i}".encode(), encode(call_request(f"s-{i}", i))) for i in range(20)]
    publish(kafka_bootstrap, dispatch_topics.requests, records)
    settings = dispatch_settings(kafka_bootstrap, dispatch_topics, platform, group_id)
    async with run_dispatcher(settings) as service:
        await wait_until(lambda: outcome_count(service) >= 20, 60, "20 outcomes")
    results = [
        dispatch_result_codec().decode(r.value)
        for r in read_topic(kafka_bootstrap, dispatch_topics.dispatches)
    ]
    assert sorted(r["outcome"] for r in results) == ["QUEUED"] * 20
    assert set(platform.client.accepted_correlation_ids().values()) == {1}
