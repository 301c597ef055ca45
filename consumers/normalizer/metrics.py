"""The normalizer's Prometheus metrics, in a registry of its own (served on ``/metrics``)."""

from __future__ import annotations

from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from callstream.contracts.records import EventType

# the types the normalizer emits: every platform event type (not the dispatcher's two)
EVENT_TYPES: tuple[EventType, ...] = tuple(
    t for t in get_args(EventType) if t not in ("DISPATCHED", "DISPATCH_FAILED")
)
_COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class NormalizerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "callstream_normalizer_events", "Events committed to calls.events, by type.",
            ["event_type"], registry=r,
        )  # fmt: skip
        self.dead_letters = Counter(
            "callstream_normalizer_dead_letters", "Records committed to the DLQ, by stage.",
            ["stage"], registry=r,
        )  # fmt: skip
        self.duplicates = Counter(
            "callstream_normalizer_duplicates",
            "Callbacks dropped because their event id was emitted recently.",
            registry=r,
        )
        self.transactions = Counter(
            "callstream_normalizer_transactions", "Transactions ended, by result.",
            ["result"], registry=r,
        )  # fmt: skip
        self.commit_seconds = Histogram(
            "callstream_normalizer_commit_seconds",
            "send_offsets_to_transaction + commit_transaction time.",
            buckets=_COMMIT_BUCKETS, registry=r,
        )  # fmt: skip
        self.lookups = Counter(
            "callstream_normalizer_lookups",
            "message_id lookups in calls.dispatches, by result (hit, miss after waiting).",
            ["result"], registry=r,
        )  # fmt: skip
        self.lookup_cache_entries = Gauge(
            "callstream_normalizer_lookup_cache_entries", "Entries in the dispatch cache.",
            registry=r,
        )  # fmt: skip
        self.lag = Gauge(
            "callstream_normalizer_lag",
            "Records of calls.callbacks.raw not yet consumed, by partition.",
            ["partition"], registry=r,
        )  # fmt: skip
        self.irregularities = Counter(
            "callstream_normalizer_irregularities",
            "Callbacks normalized despite a defect, by kind.",
            ["kind"], registry=r,
        )  # fmt: skip
        self.by_type = {t: self.events.labels(t) for t in EVENT_TYPES}
        self.committed = self.transactions.labels("committed")
        self.aborted = self.transactions.labels("aborted")
        self.hits = self.lookups.labels("hit")
        self.misses = self.lookups.labels("miss")
