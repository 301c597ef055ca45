"""The dispatcher's Prometheus metrics (one registry per service instance, served on /metrics)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class DispatchMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        p = "callstream_dispatch_"
        self.consumed = Counter(p + "records_consumed", "Records consumed.", ["topic"], registry=r)
        self.outcomes = Counter(
            p + "outcomes", "Results written, by outcome.", ["outcome"], registry=r
        )
        self.http = Counter(
            p + "http_responses", "Platform answers by status.", ["status"], registry=r
        )
        self.retries = Counter(
            p + "retries", "Retries scheduled, by where they wait.", ["via"], registry=r
        )
        self.dlq = Counter(
            p + "dlq_records", "Records written to the dead-letter topic.", registry=r
        )
        self.skipped = Counter(
            p + "already_answered", "Records skipped: their result already exists.", registry=r
        )
        self.in_flight = Gauge(p + "in_flight", "Platform requests in flight.", registry=r)
        # read when scraped: a plain int on the hot path instead of two locked updates per call
        self.requests_on_wire = 0
        self.in_flight.set_function(lambda: self.requests_on_wire)
        self.unfinished = Gauge(p + "unfinished_records", "Records not finished.", registry=r)
        self.paused = Gauge(
            p + "platform_paused", "1 while paused by a 401/403/404/405.", registry=r
        )
        self.rate_limit = Gauge(p + "rate_limit", "Current calls/s limit (0 = none).", registry=r)
        self.lag = Gauge(
            p + "consumer_lag",
            "Records behind the high watermark.",
            ["topic", "partition"],
            registry=r,
        )
        self.http_latency = Histogram(
            p + "http_seconds", "Platform request latency.", buckets=LATENCY_BUCKETS, registry=r
        )
        self.latency = Histogram(
            p + "latency_seconds",
            "Consumed to result acknowledged, per record.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

        # labelled children cached: ``labels()`` costs a lock and a tuple per call
        self._outcome_children: dict[str, Any] = {}
        self._http_children: dict[int | str, Any] = {}
        self._consumed_children: dict[str, Any] = {}

    def outcome(self, outcome: str) -> Any:
        child = self._outcome_children.get(outcome)
        if child is None:
            child = self._outcome_children[outcome] = self.outcomes.labels(outcome)
        return child

    def http_status(self, status: int | str) -> Any:
        child = self._http_children.get(status)
        if child is None:
            child = self._http_children[status] = self.http.labels(str(status))
        return child

    def consumed_from(self, topic: str) -> Any:
        child = self._consumed_children.get(topic)
        if child is None:
            child = self._consumed_children[topic] = self.consumed.labels(topic)
        return child
