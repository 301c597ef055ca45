"""The gateway's Prometheus metrics, in a registry of its own (served on /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# write latency: sub-millisecond on a healthy local cluster up to the 5 s write timeout
_WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "callstream_gateway_requests",
            "Callback requests answered, by HTTP status.",
            ["status"],
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "callstream_gateway_auth_failures",
            "Requests refused with 401, by configured auth method.",
            ["method"],
            registry=self.registry,
        )
        self.write_seconds = Histogram(
            "callstream_gateway_write_seconds",
            "Time from produce to the broker's acknowledgement (or to giving up), by outcome.",
            ["outcome"],
            buckets=_WRITE_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "callstream_gateway_writes_in_flight",
            "Writes waiting for the broker's acknowledgement.",
            registry=self.registry,
        )
        self.body_bytes = Counter(
            "callstream_gateway_stored_bytes",
            "Bytes of callback bodies stored in Kafka.",
            registry=self.registry,
        )
        self.late_acks = Gauge(
            "callstream_gateway_late_acks",
            "Records the broker acknowledged after their request was answered 503 (duplicates"
            " follow when the platform retries; the normalizer drops them).",
            registry=self.registry,
        )
        self._status = {s: self.requests.labels(str(s)) for s in (200, 401, 405, 413, 503)}
        self.write_ok = self.write_seconds.labels("ok")
        self.write_failed = self.write_seconds.labels("failed")

    def answered(self, status: int) -> None:
        counter = self._status.get(status)
        if counter is None:
            counter = self._status[status] = self.requests.labels(str(status))
        counter.inc()
