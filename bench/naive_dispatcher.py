"""The naive dispatcher the benchmark compares against (design section 7): synchronous consume,
one blocking POST at a time, the same two outputs as the real dispatcher (CallEvent and
DispatchResult) produced and flushed together (one acknowledgement wait, ``linger.ms`` 0 so
nothing waits for a batch), the offset committed, per record.

Same decoding, mapping, outcome classification and result records as the real dispatcher, so the
difference measured is the architecture (concurrency, batching, async commits), not the work.
"""

from __future__ import annotations

import http.client
import time
import urllib.parse

from confluent_kafka import Consumer, Producer

from callstream.contracts import call_event_codec, dispatch_result_codec, parse_call_request
from consumers.dispatcher.mapping import encode_body, platform_body
from consumers.dispatcher.outcomes import classify
from consumers.dispatcher.results import Source, call_event, dispatch_result, event_key


def run_naive(
    bootstrap: str,
    topic: str,
    results_topic: str,
    events_topic: str,
    platform_url: str,
    key: str,
    count: int,
    group: str,
    timeout: float = 300.0,
) -> float:
    """Dispatch ``count`` records; returns the seconds taken from the first record to the last."""
    url = urllib.parse.urlsplit(platform_url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=10)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 0,
        }
    )
    codec = dispatch_result_codec()
    event_codec = call_event_codec()
    consumer.subscribe([topic])
    done = 0
    started: float | None = None
    deadline = time.monotonic() + timeout
    try:
        while done < count and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            if started is None:
                started = time.monotonic()
            req = parse_call_request(msg.value() or b"")
            body = encode_body(platform_body(req, default_notify_url=None, default_receipts=[]))
            conn.request(
                "POST", "/v2/messages", body, {"key": key, "Content-Type": "application/json"}
            )
            response = conn.getresponse()
            accepted = classify(
                response.status, dict(response.getheaders()), response.read(), req["correlation_id"]
            )
            source = Source(topic, int(msg.partition() or 0), int(msg.offset() or 0))
            result = dispatch_result(
                correlation_id=req["correlation_id"],
                outcome=accepted.outcome,
                msisdn=req["msisdn"],
                requested_at=req["created_at"],
                attempts=1,
                source=source,
                http_status=accepted.http_status,
                message_id=accepted.message_id,
            )
            event = call_event(result, source)
            producer.produce(events_topic, event_codec.encode(event), event_key(result))
            producer.produce(results_topic, codec.encode(result), req["correlation_id"].encode())
            producer.flush(10)
            consumer.commit(message=msg, asynchronous=False)
            done += 1
    finally:
        consumer.close()
        conn.close()
    if started is None or done < count:
        raise RuntimeError(f"naive dispatcher finished {done} of {count}")
    return time.monotonic() - started
