"""Normalizer throughput: the transactional normalizer vs a plain consume-produce copy.

Run: ``python -m bench.bench_normalize`` (``--records 200000 --rounds 2``; bounded).

The raw topic is pre-filled once with realistic callbacks (the documented sequences of answered,
hung-up, trombone, busy, no-answer, rejected and expired calls; timestamps with ``Z``, offsets or
no zone; destinations with and without ``+``; ids missing on Trombone/Disconnected; the gateway's
headers), and calls.dispatches with one DispatchResult per call, so lookups hit as in production.
Then each mode reads the whole topic with a fresh consumer group into a fresh output topic, in a
child process pinned to one core (``os.sched_setaffinity`` before any client exists, so
librdkafka's threads are pinned too):

- ``normalize``: the production :class:`~consumers.normalizer.pipeline.Pipeline` (transactions,
  ``send_offsets_to_transaction``, dispatch lookup, dedupe window, DLQ), default batching;
- ``copy``: the baseline, the same client library and producer settings (idempotent, acks=all)
  copying each record's bytes, committing offsets asynchronously per batch, no transform, no
  transactions;
- ``transform``: for information, the copy loop plus the normalizer's transformation (parse, map,
  encode), still without transactions: what the transactions themselves cost is the gap between
  it and ``normalize``.

Rounds alternate the modes so drift hits all alike; the figures are medians over rounds.
Throughput is records per second of wall time from the first record consumed to the last one
committed (flushed for the baselines). Kafka: ``CALLSTREAM_KAFKA_BOOTSTRAP_SERVERS`` when set,
else a private broker from ``dev/kafka/launcher.py`` (stopped at the end).

Writes ``bench/results/normalize.json`` and ``bench/results/normalize.png``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import resource
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from queue import Empty
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
RATIO_BAR = 0.5
ABSOLUTE_BAR = 20_000
PARTITIONS = 3
MODES = ("normalize", "copy", "transform")

SEQUENCES: list[tuple[float, list[list[tuple[str, str, str]]]]] = [
    # weight, steps of (deliveryStatus, code, Description)
    (36, [[("OFFERED", "7407", "Call offered")], [("ACCEPTED", "7408", "Call accepted")],
          [("ANSWERED", "7519", "Answered")],
          [("DROPPED", "7409", "Call dropped"), ("Released", "7405", "Release")]]),
    (18, [[("OFFERED", "7407", "Call offered")], [("ACCEPTED", "7408", "Call accepted")],
          [("ANSWERED", "7519", "Answered")],
          [("Released", "7405", "Release"), ("DISCONNECTED", "7410", "Call disconnected"),
           ("DROPPED", "7409", "Call dropped")]]),
    (6, [[("OFFERED", "7407", "Call offered")], [("ACCEPTED", "7408", "Call accepted")],
         [("ANSWERED", "7519", "Answered")], [("TROMBONE_CONNECTED", "7411", "Trombone connected")],
         [("TROMBONE_RELEASED", "7412", "Trombone released")],
         [("Released", "7405", "Release"), ("DISCONNECTED", "7410", "Call disconnected"),
          ("DROPPED", "7409", "Call dropped")]]),
    (15, [[("OFFERED", "7407", "Call offered")], [("ACCEPTED", "7408", "Call accepted")],
          [("DROPPED", "7409", "Call dropped"), ("REJECTED", "7401", "No answer")]]),
    (10, [[("OFFERED", "7407", "Call offered")], [("ACCEPTED", "7408", "Call accepted")],
          [("DROPPED", "7409", "Call dropped"), ("REJECTED", "7402", "Customer busy")]]),
    (10, [[("OFFERED", "7407", "Call offered")], [("ACCEPTED", "7408", "Call accepted")],
          [("DROPPED", "7409", "Call dropped"), ("REJECTED", "7406", "Rejected")]]),
    (5, [[("Failed", "7005", "Request expired")]]),
]  # fmt: skip
WITHOUT_IDS = {"TROMBONE_CONNECTED", "TROMBONE_RELEASED", "DISCONNECTED"}


def realistic_callbacks(count: int, seed: int = 7) -> tuple[list[tuple[bytes, bytes]], list[Any]]:
    """(key, body) of ``count`` callbacks, and the DispatchResults of their calls."""
    rng = random.Random(seed)
    weights = [w for w, _ in SEQUENCES]
    bodies: list[tuple[bytes, bytes]] = []
    dispatches: list[dict[str, Any]] = []
    start = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
    n = 0
    while len(bodies) < count:
        n += 1
        message_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        correlation_id = f"bench-{n:08d}"
        msisdn = f"+1415{rng.randrange(10**7):07d}"
        steps = rng.choices([s for _, s in SEQUENCES], weights=weights)[0]
        style = rng.choice(("Z", "offset", "naive"))
        zone = timezone(timedelta(minutes=rng.choice((330, 60, -240, 0))))
        moment = start + timedelta(seconds=n)
        dispatches.append(
            {
                "correlation_id": correlation_id, "message_id": message_id, "outcome": "QUEUED",
                "http_status": 201, "platform_code": None, "description": None, "attempts": 1,
                "msisdn": msisdn, "requested_at": moment, "completed_at": moment,
                "attributes": {"campaign": "bench", "tenant": "t1"},
                "callback_data": f"cbd-{correlation_id}",
            }
        )  # fmt: skip
        for step in steps:
            moment += timedelta(milliseconds=rng.randrange(200, 20_000))
            if style == "offset":
                stamp = moment.astimezone(zone).isoformat(timespec="milliseconds")
            else:
                naive = moment.replace(tzinfo=None).isoformat(timespec="milliseconds")
                stamp = naive + ("Z" if style == "Z" else "")
            for status, code, description in rng.sample(step, len(step)):
                notification: dict[str, Any] = {
                    "deliveryInfo": {
                        "timeStamp": stamp, "Description": description, "code": code,
                        "deliveryChannel": "voice", "additionalInfo": "",
                        "destination": msisdn if rng.random() < 0.5 else msisdn[1:],
                        "destinationType": "msisdn", "deliveryStatus": status,
                    },
                    "subtid": f"{rng.getrandbits(64):016x}",
                    "transid": message_id,
                }  # fmt: skip
                if status not in WITHOUT_IDS:
                    notification["callbackData"] = f"cbd-{correlation_id}"
                    notification["correlationid"] = correlation_id
                body: dict[str, Any] = {"deliveryInfoNotification": notification}
                if status == "DROPPED":
                    body = {
                        "deliveryTransInfo": f"<deliveryTransInfo><transid>{message_id}"
                        "</transid></deliveryTransInfo>",
                        **body,
                    }
                bodies.append((message_id.encode(), orjson.dumps(body)))
    return bodies[:count], dispatches


def gateway_headers(i: int) -> list[tuple[str, bytes]]:
    return [
        ("callstream.received_at", str(1_795_900_000_000 + i).encode()),
        ("callstream.request_id", f"{i:032x}".encode()),
        ("callstream.auth", b"hmac"),
        ("content-type", b"application/json"),
    ]


# -- Kafka helpers ----------------------------------------------------------------------------
def create_topics(bootstrap: str, names: list[str], config: dict[str, str] | None = None) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=PARTITIONS, replication_factor=1, config=config or {})
         for n in names]
    )  # fmt: skip
    for future in futures.values():
        future.result(30)


def prefill(bootstrap: str, raw_topic: str, dispatch_topic: str, records: int) -> int:
    from confluent_kafka import Producer

    from callstream.contracts import dispatch_result_codec

    bodies, dispatches = realistic_callbacks(records)
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4",
         "enable.idempotence": True, "queue.buffering.max.messages": 1_000_000}
    )  # fmt: skip
    codec = dispatch_result_codec()
    for result in dispatches:
        producer.produce(dispatch_topic, codec.encode(result), result["correlation_id"].encode())
    for i, (key, body) in enumerate(bodies):
        while True:
            try:
                producer.produce(raw_topic, body, key, headers=gateway_headers(i))
                break
            except BufferError:
                producer.poll(0.1)
    if producer.flush(120):
        raise RuntimeError("prefill not acknowledged")
    return len(dispatches)


# -- the measured child processes ------------------------------------------------------------
def _pin(cpu: int | None) -> None:
    """Pin to one core, and tune the collector as ``callstream normalize`` does (every mode)."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    from callstream.gc_tuning import tune_gc

    tune_gc()


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_normalize(opts: dict[str, Any], out: Any) -> None:
    _pin(opts["cpu"])
    from confluent_kafka import Consumer, TopicPartition

    from callstream.kafka_config import consumer_config
    from callstream.settings import Settings
    from consumers.normalizer.lookup import DispatchLookup
    from consumers.normalizer.pipeline import Pipeline
    from consumers.normalizer.settings import NormalizerSettings

    settings = Settings(
        kafka_bootstrap_servers=opts["bootstrap"], topic_callbacks_raw=opts["raw"],
        topic_events=opts["out"], topic_callbacks_dlq=opts["dlq"],
        topic_dispatches=opts["dispatches"], log_level="WARNING",
    )  # fmt: skip
    ns = NormalizerSettings(
        group_id=opts["group"], instance_id=opts["group"], create_topics=False,
    )  # fmt: skip
    lookup = DispatchLookup(
        consumer_config(settings, group_id=opts["group"] + "-lookup", client_id="bench-lookup"),
        settings.topic_dispatches,
        capacity=ns.lookup_cache_size,
    )
    lookup.start()
    probe = Consumer({"bootstrap.servers": opts["bootstrap"], "group.id": opts["group"] + "-p"})
    targets = {
        p: probe.get_watermark_offsets(TopicPartition(opts["dispatches"], p), timeout=10)[1]
        for p in range(PARTITIONS)
    }
    probe.close()
    lookup.wait_until(targets, 120)  # steady state: the reader has caught up
    pipeline = Pipeline(settings, ns, lookup=lookup)
    stop = threading.Event()
    errors: list[str] = []

    def target() -> None:
        try:
            pipeline.run(stop)
        except Exception as exc:
            errors.append(repr(exc))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = time.monotonic() + opts["timeout"]
    cpu0: float | None = None
    while pipeline.records_committed < opts["records"] and time.monotonic() < deadline:
        if cpu0 is None and pipeline.first_record_at is not None:
            cpu0 = _cpu_seconds()
        if errors:
            break
        time.sleep(0.005)
    end = time.monotonic()
    cpu1 = _cpu_seconds()
    stop.set()
    thread.join(60)
    lookup.close()
    m = pipeline.metrics
    out.put(
        {
            "records": pipeline.records_committed,
            "seconds": end - (pipeline.first_record_at or end),
            "cpu_seconds": cpu1 - (cpu0 or cpu1),
            "transactions": pipeline.transactions_committed,
            "lookup_hits": m.hits._value.get(),
            "lookup_misses": m.misses._value.get(),
            "duplicates": m.duplicates._value.get(),
            "errors": errors,
        }
    )


def run_copy(opts: dict[str, Any], out: Any) -> None:
    _pin(opts["cpu"])
    from confluent_kafka import Consumer, Producer

    from callstream.kafka_config import consumer_config, producer_config
    from callstream.settings import Settings
    from consumers.normalizer.transform import DeadLetter, Transformer

    settings = Settings(kafka_bootstrap_servers=opts["bootstrap"])
    consumer = Consumer(consumer_config(settings, group_id=opts["group"], client_id="bench-copy"))
    tuning = {"linger.ms": 5, "batch.num.messages": 10_000, "queue.buffering.max.messages": 100_000}
    producer = Producer(producer_config(settings, client_id="bench-copy", **tuning))
    transformer = Transformer() if opts["mode"] == "transform" else None
    consumer.subscribe([opts["raw"]])
    done, first, cpu0 = 0, None, 0.0
    deadline = time.monotonic() + opts["timeout"]
    produce, out_topic = producer.produce, opts["out"]
    while done < opts["records"] and time.monotonic() < deadline:
        messages = consumer.consume(num_messages=5000, timeout=0.1)
        if not messages:
            continue
        if first is None:
            first, cpu0 = time.monotonic(), _cpu_seconds()
        for msg in messages:
            if msg.error() is not None:
                continue
            value = msg.value()
            if transformer is not None:
                decided = transformer.decide(value, 1_795_900_000_000)
                if isinstance(decided, DeadLetter):
                    continue
                value = decided.value
            try:
                produce(out_topic, value, msg.key())
            except BufferError:
                producer.poll(0.1)
                produce(out_topic, value, msg.key())
            done += 1
        producer.poll(0)
        consumer.commit(asynchronous=True)
    producer.flush(60)
    end = time.monotonic()
    cpu1 = _cpu_seconds()
    consumer.close()
    out.put({"records": done, "seconds": end - (first or end), "cpu_seconds": cpu1 - cpu0,
             "errors": []})  # fmt: skip


def measure(mode: str, opts: dict[str, Any]) -> dict[str, Any]:
    from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

    suffix = uuid.uuid4().hex[:8]
    run_opts = {**opts, "mode": mode, "group": f"bench-{mode}-{suffix}",
                "out": f"bench-out-{mode}-{suffix}"}  # fmt: skip
    create_topics(opts["bootstrap"], [run_opts["out"]])
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    target = run_normalize if mode == "normalize" else run_copy
    proc = ctx.Process(target=target, args=(run_opts, queue))
    proc.start()
    try:
        deadline = time.monotonic() + opts["timeout"] + 120
        while True:
            try:
                result: dict[str, Any] = queue.get(timeout=1)
                break
            except Empty:
                if not proc.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"{mode} run died (exit code {proc.exitcode})") from None
    finally:
        proc.join(60)
        AdminClient({"bootstrap.servers": opts["bootstrap"]}).delete_topics([run_opts["out"]])
    result["mode"] = mode
    seconds = result["seconds"] or float("nan")
    result["events_per_s"] = result["records"] / seconds
    result["events_per_cpu_s"] = result["records"] / (result["cpu_seconds"] or float("nan"))
    return result


# -- report -------------------------------------------------------------------------------------
def chart(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(MODES)
    wall = [summary["median_events_per_s"][m] for m in modes]
    cpu = [summary["median_events_per_cpu_s"][m] for m in modes]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, values, title in (
        (axes[0], wall, "records / s (wall clock, one pinned core)"),
        (axes[1], cpu, "records / CPU-second of the pinned process"),
    ):
        bars = ax.bar(modes, values, color=["#2a7ab0", "#999999", "#c0c0c0"])
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values])
        ax.axhline(ABSOLUTE_BAR, color="#c03030", linestyle="--", label="20,000/s bar")
        ax.set_title(title, fontsize=10)
        ax.set_yscale("log")
        ax.legend(loc="upper right", fontsize=8)
    fig.suptitle(
        f"normalizer (transactions) vs plain copy: ratio {summary['ratio_vs_copy']:.2f} "
        f"(bar {RATIO_BAR}); vs the same transform without transactions: "
        f"{summary['ratio_vs_transform_without_transactions']:.2f}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cpu", type=int, default=0, help="core to pin each measured run to")
    parser.add_argument("--timeout", type=float, default=300.0, help="per run, seconds")
    args = parser.parse_args(argv)

    broker: Any = None
    bootstrap = os.environ.get("CALLSTREAM_KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if not bootstrap:
        sys.path.insert(0, str(ROOT))
        from tests.kafka_fixtures import free_ports, load_launcher

        launcher = load_launcher()
        port, controller = free_ports(2)
        data_dir = Path(tempfile.mkdtemp(prefix="bench-normalize-kafka-"))
        broker = launcher.start(port, controller, data_dir, fresh=True, die_with_parent=True)
        bootstrap = broker.bootstrap_servers
    try:
        suffix = uuid.uuid4().hex[:8]
        raw, dlq, dispatches = (f"bench-{n}-{suffix}" for n in ("raw", "dlq", "dispatches"))
        create_topics(bootstrap, [raw, dlq])
        create_topics(bootstrap, [dispatches], {"cleanup.policy": "compact"})
        started = time.monotonic()
        calls = prefill(bootstrap, raw, dispatches, args.records)
        print(f"pre-filled {args.records:,} callbacks of {calls:,} calls "
              f"in {time.monotonic() - started:.1f} s")  # fmt: skip
        cpu = args.cpu if args.cpu < (os.cpu_count() or 1) else None
        opts = {"bootstrap": bootstrap, "raw": raw, "dlq": dlq, "dispatches": dispatches,
                "records": args.records, "cpu": cpu, "timeout": args.timeout}  # fmt: skip
        runs: list[dict[str, Any]] = []
        for round_no in range(args.rounds):
            for mode in MODES:
                result = measure(mode, opts)
                result["round"] = round_no + 1
                runs.append(result)
                print(
                    f"round {round_no + 1} {mode:<10} {result['records']:>8,} records "
                    f"{result['events_per_s']:>10,.0f}/s  "
                    f"({result['events_per_cpu_s']:,.0f}/cpu-s) {result.get('errors') or ''}"
                )
    finally:
        if broker is not None:
            broker.stop()

    def median(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in runs if r["mode"] == mode)

    rates = {m: median(m, "events_per_s") for m in MODES}
    complete = all(r["records"] == args.records and not r.get("errors") for r in runs)
    summary = {
        "records": args.records,
        "rounds": args.rounds,
        "cpu": cpu,
        "median_events_per_s": rates,
        "median_events_per_cpu_s": {m: median(m, "events_per_cpu_s") for m in MODES},
        "ratio_vs_copy": rates["normalize"] / rates["copy"],
        "ratio_vs_transform_without_transactions": rates["normalize"] / rates["transform"],
        "ratio_vs_copy_cpu": median("normalize", "events_per_cpu_s")
        / median("copy", "events_per_cpu_s"),
        "bars": {"ratio_vs_copy": RATIO_BAR, "events_per_s": ABSOLUTE_BAR},
        "complete": complete,
        "runs": runs,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    summary["pass"] = bool(
        complete and summary["ratio_vs_copy"] >= RATIO_BAR and rates["normalize"] >= ABSOLUTE_BAR
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "normalize.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    chart(summary, RESULTS / "normalize.png")
    print()
    print(f"{'mode':<12}{'events/s':>12}{'events/cpu-s':>15}")
    for mode in MODES:
        print(f"{mode:<12}{rates[mode]:>12,.0f}{summary['median_events_per_cpu_s'][mode]:>15,.0f}")
    print(
        f"ratio normalize/copy      {summary['ratio_vs_copy']:.2f}  (bar {RATIO_BAR}; "
        f"per CPU-second {summary['ratio_vs_copy_cpu']:.2f})"
    )
    print(f"ratio normalize/transform {summary['ratio_vs_transform_without_transactions']:.2f}")
    print(f"absolute                  {rates['normalize']:,.0f}/s  (bar {ABSOLUTE_BAR:,})")
    print("PASS" if summary["pass"] else "FAIL")
    return 0 if summary["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
