"""Dispatcher benchmark (design section 7): every figure a ratio against a baseline of the same run.

Run: ``python -m bench.bench_dispatch`` (bounded, 127.0.0.1 only; ``--quick`` for a smoke run).

1. **Raw HTTP ceiling**: the dispatcher's own :class:`PlatformClient` (same aiohttp session,
   same in-flight limit, same uvloop event loop) POSTs the same request bodies to the same
   sandbox, no Kafka.
2. **Dispatcher**: the real :class:`DispatchService` (in this process, logs formatted but sent
   to /dev/null) drains the same number of records pre-published to ``calls.requests``:
   decode, dedupe, POST, DispatchResult + CallEvent acknowledged (acks=all), commits. Timed
   from its first outcome to the last (its start-up, group join and producer id, is reported
   apart, as the ceiling's client start is not timed either). Bar: >= 0.6 of the ceiling.
   Both run once unmeasured first (a tenth of the records): the broker's JIT, the sandbox and
   the connection pools are warm when measured.
3. **Naive dispatcher** (:mod:`bench.naive_dispatcher`): synchronous consume, one blocking POST,
   the same two outputs (CallEvent + DispatchResult) flushed together and the offset committed
   per record. Bar: the dispatcher >= 8x.
4. **Latency at half of peak**: records published at half the dispatcher's measured rate for a
   while; latency = result ``completed_at`` - request record timestamp; p50 and p99.
5. **Peak RSS under a backlog of 1,000,000 requests**: the dispatcher as a separate process
   (``python -m callstream dispatch``) started on a topic holding 1,000,000 waiting requests,
   RSS sampled while it works. Bar: < 200 MB. Also: dedupe state bytes per result.

The sandbox runs as its own process (``callstream sandbox``, callbacks off). Kafka:
``CALLSTREAM_KAFKA_BOOTSTRAP_SERVERS`` when set, else a private broker from
``dev/kafka/launcher.py`` on free ports, stopped at the end.

Writes ``bench/results/dispatch.json`` and ``bench/results/dispatch.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import psutil
from confluent_kafka import Producer

from bench.naive_dispatcher import run_naive

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
KEY = "bench-key"
PARTITIONS = 3
MAX_IN_FLIGHT = 64


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request_json(cid: str, n: int) -> bytes:
    return orjson.dumps(
        {
            "correlation_id": cid,
            "caller_id": "+14155550100",
            "msisdn": f"+1415{n % 10_000_000:07d}",
            "content": {"type": "media", "media_id": "prompt-1"}
            if n % 2
            else {
                "type": "tts",
                "text": "Your appointment is tomorrow at 10.",
                "language": "en-US",
                "voice": "GuyNeural",
                "region": "eastus",
            },
            "priority": "MEDIUM",
            "callback_data": f"bench-{n}",
            "created_at": int(time.time() * 1000),
            "attributes": {"campaign": "bench"},
        }
    )


# -- infrastructure ----------------------------------------------------------------------------
@contextmanager
def kafka() -> Iterator[str]:
    configured = os.environ.get("CALLSTREAM_KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if configured:
        yield configured
        return
    from tests.kafka_fixtures import free_ports, load_launcher, wait_for_broker

    launcher = load_launcher()
    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp:
        port, controller = free_ports(2)
        broker = launcher.start(
            port, controller, Path(tmp) / "kafka", fresh=True, die_with_parent=True
        )
        try:
            wait_for_broker(broker.bootstrap_servers)
            yield broker.bootstrap_servers
        finally:
            broker.stop()


@contextmanager
def sandbox_process(latency_ms: float = 0.0) -> Iterator[str]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "callstream",
        "sandbox",
        "--port",
        str(port),
        "--no-callbacks",
        "--duplicate-window-seconds",
        "0",
        "--service-key",
        KEY,
        "--ledger-limit",
        "1000",
        "--log-level",
        "WARNING",
        "--latency-ms",
        str(latency_ms),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/_sandbox/health", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("sandbox did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def reset_sandbox(url: str) -> None:
    request = urllib.request.Request(url + "/_sandbox/reset", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=10):
        pass


def create_topics(bootstrap: str, prefix: str) -> dict[str, str]:
    from callstream.settings import Settings
    from callstream.topics import ensure_topics

    names = {
        "requests": f"{prefix}.requests",
        "requests_retry": f"{prefix}.requests.retry",
        "requests_dlq": f"{prefix}.requests.dlq",
        "dispatches": f"{prefix}.dispatches",
        "events": f"{prefix}.events",
    }
    settings = Settings(
        kafka_bootstrap_servers=bootstrap,
        topic_requests=names["requests"],
        topic_requests_retry=names["requests_retry"],
        topic_requests_dlq=names["requests_dlq"],
        topic_dispatches=names["dispatches"],
        topic_events=names["events"],
    )
    ensure_topics(settings, list(names.values()), partitions=PARTITIONS)
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + 30
    while True:  # every partition has a leader before anyone uses the topics
        meta = admin.list_topics(timeout=10).topics
        if all(
            n in meta
            and len(meta[n].partitions) == PARTITIONS
            and all(p.leader >= 0 for p in meta[n].partitions.values())
            for n in names.values()
        ):
            return names
        if time.monotonic() > deadline:
            raise RuntimeError("bench topics have no leaders")
        time.sleep(0.2)


def publish(bootstrap: str, topic: str, count: int, prefix: str) -> None:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 500000,
        }
    )
    for n in range(count):
        cid = f"{prefix}-{n}"
        while True:
            try:
                producer.produce(topic, request_json(cid, n), cid.encode())
                break
            except BufferError:
                producer.poll(0.05)
        if n % 10000 == 0:
            producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError("bench records not delivered")


def dispatch_settings(bootstrap: str, topics: dict[str, str], url: str, **extra: Any) -> Any:
    from consumers.dispatcher.settings import DispatchSettings

    return DispatchSettings(
        kafka_bootstrap_servers=bootstrap,
        topic_requests=topics["requests"],
        topic_requests_retry=topics["requests_retry"],
        topic_requests_dlq=topics["requests_dlq"],
        topic_dispatches=topics["dispatches"],
        topic_events=topics["events"],
        platform_url=url,
        platform_service_key=KEY,
        dispatch_group_id=f"bench-{uuid.uuid4().hex[:8]}",
        dispatch_max_in_flight=MAX_IN_FLIGHT,
        http_host="127.0.0.1",
        http_port=0,
        **extra,
    )


def quiet_logs() -> None:
    """INFO logs formatted as in production, written to /dev/null (their cost is measured)."""
    from callstream.log import configure_logging

    saved = sys.stderr
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115  (kept open for the process's life)
    try:
        configure_logging("INFO", "json", force=True)
    finally:
        sys.stderr = saved


# -- measurements --------------------------------------------------------------------------------
async def raw_ceiling(url: str, count: int) -> float:
    from callstream.contracts import parse_call_request
    from consumers.dispatcher.mapping import encode_body, platform_body
    from consumers.dispatcher.platform_client import PlatformClient

    bodies = [
        encode_body(
            platform_body(
                parse_call_request(request_json(f"raw-{uuid.uuid4().hex[:6]}-{n}", n)),
                default_notify_url=None,
                default_receipts=[],
            )
        )
        for n in range(count)
    ]
    client = PlatformClient(
        url + "/v2/messages",
        KEY,
        max_in_flight=MAX_IN_FLIGHT,
        connect_timeout=5,
        request_timeout=10,
    )
    await client.start()
    queue = iter(bodies)

    async def worker() -> None:
        for body in queue:
            status, _, _ = await client.post(body)
            if status != 201:
                raise RuntimeError(f"raw ceiling: HTTP {status}")

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(MAX_IN_FLIGHT)))
    elapsed = time.monotonic() - started
    await client.close()
    return count / elapsed


async def poll_until(done: Any, interval: float = 0.01) -> None:
    while True:
        if done():
            return
        await asyncio.sleep(interval)


def outcome_count(service: Any) -> int:
    return int(
        sum(
            s.value
            for m in service.metrics.outcomes.collect()
            for s in m.samples
            if s.name.endswith("_total")
        )
    )


async def dispatcher_rate(bootstrap: str, url: str, count: int) -> dict[str, float]:
    """Drain ``count`` pre-published records; the rate is steady-state: from the first outcome
    to the last (start-up, i.e. group join, producer id and first fetch, is reported apart, as
    the ceiling's client start is not timed either)."""
    from consumers.dispatcher.service import DispatchService

    topics = create_topics(bootstrap, f"bench-{uuid.uuid4().hex[:8]}")
    publish(bootstrap, topics["requests"], count, f"d-{uuid.uuid4().hex[:6]}")
    service = DispatchService(dispatch_settings(bootstrap, topics, url))
    stop = asyncio.Event()
    launched = time.monotonic()
    task = asyncio.create_task(service.run(stop))
    await poll_until(lambda: outcome_count(service) > 0 or task.done(), interval=0.001)
    started, first = time.monotonic(), outcome_count(service)
    await poll_until(lambda: outcome_count(service) >= count or task.done())
    if task.done():
        raise RuntimeError("dispatcher stopped")
    elapsed = time.monotonic() - started
    stop.set()
    if await task != 0:
        raise RuntimeError("dispatcher ended with a fatal error")
    return {"rps": (count - first) / elapsed, "startup_s": started - launched}


WARMUP_S = 4.0  # records sent in the first seconds wait for the service's start-up (producer id,
# first fetch: ~1.7 s measured); they are sent but left out of the steady-state percentiles


async def latency_at(bootstrap: str, url: str, rate: float, seconds: float) -> dict[str, float]:
    from callstream.contracts import dispatch_result_codec
    from consumers.dispatcher.service import DispatchService
    from tests.integration.test_dispatch_support import read_topic

    topics = create_topics(bootstrap, f"bench-{uuid.uuid4().hex[:8]}")
    service = DispatchService(dispatch_settings(bootstrap, topics, url))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await poll_until(lambda: service.readiness()[0] or task.done())
    total = int(rate * (seconds + WARMUP_S))

    def paced() -> None:
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
        started = time.monotonic()
        for n in range(total):
            due = started + n / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            cid = f"lat-{n}"
            producer.produce(topics["requests"], request_json(cid, n), cid.encode())
            producer.poll(0)
        producer.flush(30)

    thread = threading.Thread(target=paced)
    thread.start()
    await poll_until(lambda: outcome_count(service) >= total or task.done())
    await asyncio.to_thread(thread.join)
    stop.set()
    if await task != 0:
        raise RuntimeError("dispatcher ended with a fatal error")
    requests = {(r.partition, r.offset): r for r in read_topic(bootstrap, topics["requests"], 120)}
    sent_ms = {k: int(orjson.loads(r.value)["created_at"]) for k, r in requests.items()}
    codec = dispatch_result_codec()
    latencies = []
    warm_from_ms = min(sent_ms.values()) + WARMUP_S * 1000
    for record in read_topic(bootstrap, topics["dispatches"], 120):
        result = codec.decode(record.value)
        key = (result["source_partition"], result["source_offset"])
        if sent_ms[key] < warm_from_ms:
            continue
        done_ms = result["completed_at"].timestamp() * 1000
        latencies.append((done_ms - sent_ms[key]) / 1000)
    latencies.sort()
    return {
        "rate": rate,
        "warmup_s": WARMUP_S,
        "records": len(latencies),
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


def peak_rss(bootstrap: str, url: str, backlog: int, seconds: float) -> dict[str, float]:
    topics = create_topics(bootstrap, f"bench-{uuid.uuid4().hex[:8]}")
    t0 = time.monotonic()
    publish(bootstrap, topics["requests"], backlog, f"rss-{uuid.uuid4().hex[:6]}")
    publish_s = time.monotonic() - t0
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSTREAM_")}
    env.update(
        {
            "CALLSTREAM_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "CALLSTREAM_TOPIC_REQUESTS": topics["requests"],
            "CALLSTREAM_TOPIC_REQUESTS_RETRY": topics["requests_retry"],
            "CALLSTREAM_TOPIC_REQUESTS_DLQ": topics["requests_dlq"],
            "CALLSTREAM_TOPIC_DISPATCHES": topics["dispatches"],
            "CALLSTREAM_TOPIC_EVENTS": topics["events"],
            "CALLSTREAM_PLATFORM_URL": url,
            "CALLSTREAM_PLATFORM_SERVICE_KEY": KEY,
            "CALLSTREAM_DISPATCH_GROUP_ID": f"bench-rss-{uuid.uuid4().hex[:6]}",
            "CALLSTREAM_HTTP_HOST": "127.0.0.1",
            "CALLSTREAM_HTTP_PORT": "0",
            "CALLSTREAM_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "callstream", "dispatch"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    peak = 0
    ps = psutil.Process(proc.pid)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            peak = max(peak, ps.memory_info().rss)
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    return {"backlog": backlog, "peak_rss_mb": peak / 2**20, "publish_s": publish_s}


def dedupe_bytes_per_result(entries: int = 100_000) -> float:
    from consumers.dispatcher.dedupe import PartitionDedupe

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    state = PartitionDedupe()
    for n in range(entries):
        state.record(f"correlation-{n:012d}", "QUEUED", str(uuid.uuid4()), n)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / entries


# -- report ----------------------------------------------------------------------------------------
def chart(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 4))
    names = ["raw HTTP ceiling", "dispatcher", "naive"]
    values = [summary["raw_rps"], summary["dispatcher_rps"], summary["naive_rps"]]
    bars = ax1.bar(names, values, color=["#999999", "#1f77b4", "#d62728"])
    ax1.bar_label(bars, fmt="%.0f")
    ax1.set_title("requests/s (same sandbox, same bodies)")
    lat = summary["latency"]
    ax2.bar(["p50", "p99"], [lat["p50_ms"], lat["p99_ms"]], color="#1f77b4")
    ax2.set_title(f"dispatch latency (ms) at {lat['rate']:.0f}/s (half of peak)")
    ax3.bar(["peak RSS", "bar"], [summary["rss"]["peak_rss_mb"], 200], color=["#1f77b4", "#999999"])
    ax3.set_title(f"MB with {summary['rss']['backlog']:,} waiting requests")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000, help="records per throughput run")
    parser.add_argument("--naive-records", type=int, default=1_000)
    parser.add_argument("--backlog", type=int, default=1_000_000)
    parser.add_argument("--rss-seconds", type=float, default=30.0)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="small numbers: a smoke run")
    parser.add_argument(
        "--platform-latency-ms",
        type=float,
        default=0.0,
        help="latency the sandbox adds to every answer (0: a co-located, CPU-bound platform; "
        "a real platform is a WAN round trip away). Same for every mode of the run.",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.records, args.naive_records, args.backlog = 2000, 200, 20_000
        args.rss_seconds, args.latency_seconds = 8.0, 3.0
    quiet_logs()
    # the collector tuned as `callstream dispatch` does; the whole process, so the ceiling and
    # the naive dispatcher (in this process too) run with it as well
    from callstream.gc_tuning import tune_gc

    tune_gc()
    from rich.console import Console
    from rich.table import Table

    console = Console()
    with kafka() as bootstrap, sandbox_process(args.platform_latency_ms) as url:
        console.print(f"kafka {bootstrap}, sandbox {url}")
        import uvloop

        # the same event loop (uvloop) as the dispatcher: the same client stack on both sides
        # warm-up, not measured: the broker's JIT, the sandbox, imports and connection pools
        uvloop.run(dispatcher_rate(bootstrap, url, max(1000, args.records // 10)))
        uvloop.run(raw_ceiling(url, max(1000, args.records // 10)))
        reset_sandbox(url)
        raw = uvloop.run(raw_ceiling(url, args.records))
        console.print(f"raw HTTP ceiling: {raw:,.0f}/s")
        reset_sandbox(url)
        drained = uvloop.run(dispatcher_rate(bootstrap, url, args.records))
        disp = drained["rps"]
        console.print(f"dispatcher: {disp:,.0f}/s (start-up {drained['startup_s']:.1f} s)")
        reset_sandbox(url)
        topics = create_topics(bootstrap, f"bench-{uuid.uuid4().hex[:8]}")
        publish(bootstrap, topics["requests"], args.naive_records, f"n-{uuid.uuid4().hex[:6]}")
        naive_s = run_naive(
            bootstrap,
            topics["requests"],
            topics["dispatches"],
            topics["events"],
            url,
            KEY,
            args.naive_records,
            f"naive-{uuid.uuid4().hex[:6]}",
        )
        naive = args.naive_records / naive_s
        console.print(f"naive: {naive:,.0f}/s")
        reset_sandbox(url)
        latency = uvloop.run(latency_at(bootstrap, url, disp / 2, args.latency_seconds))
        console.print(f"latency at {disp / 2:,.0f}/s: p50 {latency['p50_ms']:.1f} ms")
        reset_sandbox(url)
        rss = peak_rss(bootstrap, url, args.backlog, args.rss_seconds)
        console.print(f"peak RSS: {rss['peak_rss_mb']:.1f} MB")
    per_result = dedupe_bytes_per_result()
    summary = {
        "records": args.records,
        "max_in_flight": MAX_IN_FLIGHT,
        "platform_latency_ms": args.platform_latency_ms,
        "raw_rps": raw,
        "dispatcher_rps": disp,
        "dispatcher_startup_s": drained["startup_s"],
        "naive_rps": naive,
        "ratio_vs_raw": disp / raw,
        "ratio_vs_naive": disp / naive,
        "latency": latency,
        "rss": rss,
        "dedupe_bytes_per_result": per_result,
        "bars": {"ratio_vs_raw": 0.6, "ratio_vs_naive": 8.0, "peak_rss_mb": 200.0},
        "cpus": os.cpu_count(),
        "quick": args.quick,
    }
    summary["pass"] = {
        "ratio_vs_raw": summary["ratio_vs_raw"] >= 0.6,
        "ratio_vs_naive": summary["ratio_vs_naive"] >= 8.0,
        "peak_rss_mb": rss["peak_rss_mb"] < 200.0,
    }
    table = Table(
        title=f"callstream dispatch benchmark (platform latency {args.platform_latency_ms:g} ms)"
    )
    for col in ("figure", "value", "bar", "ok"):
        table.add_column(col)
    p = summary["pass"]
    table.add_row("raw HTTP ceiling (req/s)", f"{raw:,.0f}", "", "")
    table.add_row("dispatcher (req/s)", f"{disp:,.0f}", "", "")
    table.add_row("naive dispatcher (req/s)", f"{naive:,.1f}", "", "")
    table.add_row("dispatcher / ceiling", f"{disp / raw:.2f}", ">= 0.6", str(p["ratio_vs_raw"]))
    table.add_row("dispatcher / naive", f"{disp / naive:.1f}x", ">= 8x", str(p["ratio_vs_naive"]))
    table.add_row(f"p50 latency at {latency['rate']:,.0f}/s", f"{latency['p50_ms']:.1f} ms", "", "")
    table.add_row(f"p99 latency at {latency['rate']:,.0f}/s", f"{latency['p99_ms']:.1f} ms", "", "")
    table.add_row(
        f"peak RSS, {rss['backlog']:,} backlog",
        f"{rss['peak_rss_mb']:.1f} MB",
        "< 200 MB",
        str(p["peak_rss_mb"]),
    )
    table.add_row("dedupe state per result", f"{per_result:.0f} B", "", "")
    console.print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    latency_ms = args.platform_latency_ms
    name = "dispatch" + (f"-latency{latency_ms:g}ms" if latency_ms else "")
    (RESULTS / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    chart(summary, RESULTS / f"{name}.png")
    console.print(f"wrote {RESULTS / (name + '.json')} and {RESULTS / (name + '.png')}")
    return 0 if all(p.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
