"""Gateway throughput: acks=all writes to the real local Kafka vs the same server without Kafka.

Run: ``python -m bench.bench_gateway`` (bounded: a few rounds of seconds each; 127.0.0.1 only).

Both modes run the *same* gateway (:class:`producers.gateway.server.GatewayServer`, same routes,
auth, size check, record building) in a child process pinned to one core; only the writer
differs: the production :class:`KafkaCallbackWriter` (idempotent, acks=all, an answer only after
the broker's ack) or, for the baseline, a writer that returns at once (a bench-only seam: the
server takes a ``writer`` argument; there is no production flag). The load generator is ``wrk``
(C, epoll) pinned to another core when available, else an aiohttp client in its own process; the
same one, with the same connections and body, drives both modes. Rounds alternate
baseline/kafka so drift hits both alike. Reported: the best round of each mode (other load on a
shared machine only ever lowers throughput), the ratio of each baseline/kafka pair, and the
server's CPU time per request (robust to that load: waiting for the CPU costs none). Server and
client CPU shares are measured, so a saturated client would show.

Kafka: ``CALLSTREAM_KAFKA_BOOTSTRAP_SERVERS`` when set, else a private broker started with
``dev/kafka/launcher.py`` on free ports (stopped at the end).

Writes ``bench/results/gateway.json`` and ``bench/results/gateway.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BAR = 0.5

BODY = orjson.dumps(
    {
        "deliveryInfoNotification": {
            "deliveryInfo": {
                "timeStamp": "2026-11-29T10:00:00Z",
                "Description": "Answered",
                "code": "7519",
                "deliveryChannel": "voice",
                "additionalInfo": "",
                "destination": "14155550123",
                "destinationType": "msisdn",
                "deliveryStatus": "ANSWERED",
            },
            "subtid": "",
            "transid": "b7e1c2d4-0f2a-4c55-9a1e-3f6a2b9c8d10",
            "callbackData": "campaign=bench",
            "correlationid": "bench-0001",
        }
    }
)

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [==[%s]==]
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "non2xx": %%d, "connect": %%d, "read": %%d, '
    .. '"write": %%d, "timeout": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d, '
    .. '"mean_us": %%f}\\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
"""


# -- the server child process ---------------------------------------------------------------


class NullWriter:
    """Bench baseline: acknowledges at once, writes nothing."""

    async def write(self, record: Any) -> None:
        return None

    def readiness(self) -> tuple[bool, str]:
        return True, "null writer"


async def _serve(args: argparse.Namespace) -> None:
    from callstream.settings import Settings
    from producers.gateway.server import GatewayServer
    from producers.gateway.settings import GatewaySettings

    settings = Settings(
        kafka_bootstrap_servers=args.bootstrap,
        topic_callbacks_raw=args.topic,
        http_host="127.0.0.1",
        http_port=0,
    )
    gateway = GatewaySettings(
        host="127.0.0.1",
        port=0,
        linger_ms=args.linger_ms,
        batch_num_messages=args.batch_num_messages,
        readiness_probe_seconds=0.5,
    )
    writer = NullWriter() if args.serve == "null" else None
    server = GatewayServer(settings, gateway, writer=writer, health=False)
    await server.start()
    for _ in range(300):  # up to 30 s for the producer to reach the broker
        if server.ready()[0]:
            break
        await asyncio.sleep(0.1)
    print(f"READY {server.port} {server.ready()[1]}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until stdin closes
    await server.stop()


def serve_main(args: argparse.Namespace) -> None:
    import uvloop

    from callstream.log import configure_logging

    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})  # before any thread exists: librdkafka's inherit it
    configure_logging("WARNING", "json")
    uvloop.run(_serve(args))


# -- the driver -----------------------------------------------------------------------------


class Server:
    def __init__(self, mode: str, bootstrap: str, topic: str, cpu: int | None, opts: Any) -> None:
        cmd = [
            sys.executable,
            "-m",
            "bench.bench_gateway",
            "--serve",
            mode,
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--linger-ms",
            str(opts.linger_ms),
            "--batch-num-messages",
            str(opts.batch_num_messages),
        ]
        if cpu is not None:
            cmd += ["--cpu", str(cpu)]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "READY":
            self.stop()
            raise RuntimeError(f"{mode} server did not start")
        self.port = int(line[1])
        self.ready_reason = " ".join(line[2:])

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_wrk(
    port: int, seconds: float, connections: int, cpu: int | None, script: Path
) -> dict[str, Any]:
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}/callbacks",
    ]

    def pin() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    before = _children_cpu()
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=seconds + 60, check=True, preexec_fn=pin
    ).stdout
    client_cpu = _children_cpu() - before
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    raw = json.loads(line[len("WRKJSON ") :])
    errors = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
    ok = raw["requests"] - raw["non2xx"] - errors
    duration = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "ok": ok,
        "non_2xx": raw["non2xx"],
        "socket_errors": errors,
        "rps": ok / duration,
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "mean_ms": raw["mean_us"] / 1000,
        "seconds": duration,
        "client_cpu_percent": 100 * client_cpu / duration,
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _aiohttp_client_main(port: int, seconds: float, connections: int, cpu: int | None) -> None:
    """Fallback load generator (own process): ``connections`` keep-alive loops for ``seconds``."""
    import aiohttp
    import uvloop

    if cpu is not None:
        os.sched_setaffinity(0, {cpu})

    async def main() -> dict[str, Any]:
        latencies: list[float] = []
        failed = 0
        url = f"http://127.0.0.1:{port}/callbacks"
        headers = {"Content-Type": "application/json"}
        end = time.perf_counter() + seconds
        connector = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=connector) as http:

            async def loop() -> None:
                nonlocal failed
                while time.perf_counter() < end:
                    t0 = time.perf_counter()
                    async with http.post(url, data=BODY, headers=headers) as resp:
                        await resp.read()
                        if resp.status == 200:
                            latencies.append(time.perf_counter() - t0)
                        else:
                            failed += 1

            started = time.perf_counter()
            await asyncio.gather(*(loop() for _ in range(connections)))
            duration = time.perf_counter() - started
        latencies.sort()
        q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
        return {
            "requests": len(latencies) + failed,
            "ok": len(latencies),
            "non_2xx": failed,
            "socket_errors": 0,
            "rps": len(latencies) / duration,
            "p50_ms": q[49] * 1000,
            "p90_ms": q[89] * 1000,
            "p99_ms": q[98] * 1000,
            "mean_ms": statistics.fmean(latencies) * 1000 if latencies else 0.0,
            "seconds": duration,
        }

    print("CLIENTJSON " + json.dumps(uvloop.run(main())), flush=True)


def run_aiohttp_client(
    port: int, seconds: float, connections: int, cpu: int | None
) -> dict[str, Any]:
    code = (
        "from bench.bench_gateway import _aiohttp_client_main as m; "
        f"m({port}, {seconds}, {connections}, {cpu})"
    )
    before = _children_cpu()
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("CLIENTJSON "))
    result: dict[str, Any] = json.loads(line[len("CLIENTJSON ") :])
    result["client_cpu_percent"] = 100 * (_children_cpu() - before) / result["seconds"]
    return result


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def topic_records(bootstrap: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}"})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        total = 0
        for p in parts:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from callstream.settings import Settings
    from callstream.topics import ensure_topics

    ensure_topics(Settings(kafka_bootstrap_servers=bootstrap), [topic], partitions=partitions)


def start_private_broker(data_dir: Path) -> Any:
    sys.path.insert(0, str(ROOT))
    from tests.kafka_fixtures import load_launcher

    launcher = load_launcher()
    port, controller = free_ports(2)
    print(f"starting a private Kafka broker on 127.0.0.1:{port} ...", flush=True)
    return launcher.start(port, controller, data_dir, fresh=True, die_with_parent=True)


def measure(mode: str, bootstrap: str, topic: str, opts: Any) -> dict[str, Any]:
    server = Server(mode, bootstrap, topic, opts.server_cpu, opts)
    try:

        def load(seconds: float) -> dict[str, Any]:
            if opts.client == "wrk":
                return run_wrk(
                    server.port, seconds, opts.connections, opts.client_cpu, opts.wrk_script
                )
            return run_aiohttp_client(server.port, seconds, opts.connections, opts.client_cpu)

        load(opts.warmup)  # connections, producer batches, code paths
        cpu0, t0 = server.cpu_seconds(), time.monotonic()
        result = load(opts.seconds)
        cpu = server.cpu_seconds() - cpu0
        result["server_cpu_percent"] = 100 * cpu / (time.monotonic() - t0)
        result["server_cpu_us_per_request"] = 1e6 * cpu / max(result["requests"], 1)
        result["mode"] = mode
        return result
    finally:
        server.stop()


def compare_writers(bootstrap: str, topic: str, opts: Any) -> dict[str, Any]:
    """In-process: 64 concurrent awaited writes, the gateway's writer vs confluent_kafka.aio.

    ``AIOProducer`` (2.16) gets no headers (it refuses them), the gateway's writer does.
    """
    import uvloop
    from confluent_kafka.aio import AIOProducer

    from producers.gateway.record import build_record
    from producers.gateway.writer import KafkaCallbackWriter

    conf = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": opts.linger_ms,
        "compression.type": "lz4",
    }
    record = build_record(
        BODY,
        request_id=str(uuid.uuid4()),
        received_at_ms=int(time.time() * 1000),
        remote_addr="127.0.0.1",
        content_type="application/json",
        auth_method="none",
    )

    async def drive(send: Any, total: int, concurrency: int = 64) -> dict[str, float]:
        async def worker() -> None:
            for _ in range(total // concurrency):
                await send()

        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
        return {
            "writes_per_s": total / wall,
            "cpu_us_per_write": 1e6 * (time.process_time() - cpu0) / total,
        }

    async def main() -> dict[str, Any]:
        writer = KafkaCallbackWriter(conf, topic, write_timeout=30)
        await writer.start()
        await drive(lambda: writer.write(record), 6400)
        ours = await drive(lambda: writer.write(record), 25600)
        await writer.close(10)
        out: dict[str, Any] = {"gateway_writer_with_headers": ours}
        for batch_size, buffer_timeout, total in ((1000, 1.0, 128), (64, 0.005, 1280)):
            aio = AIOProducer(dict(conf), batch_size=batch_size, buffer_timeout=buffer_timeout)

            async def send(aio: Any = aio) -> None:
                await (await aio.produce(topic, value=BODY, key=b"k"))

            name = f"aio_producer_batch{batch_size}_timeout{buffer_timeout:g}s_no_headers"
            out[name] = await drive(send, total)
            try:
                await aio.produce(topic, value=BODY, headers=[("h", b"v")])
                out["aio_producer_accepts_headers"] = True
            except NotImplementedError:
                out["aio_producer_accepts_headers"] = False
            await aio.close()
        return out

    result: dict[str, Any] = uvloop.run(main())
    return result


def chart(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base, kafka = summary["baseline"], summary["kafka"]
    labels = ["no Kafka (baseline)", "Kafka acks=all"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    bars = ax1.bar(labels, [base["rps"], kafka["rps"]], color=["#999999", "#1f77b4"])
    ax1.bar_label(bars, fmt="%.0f")
    ax1.set_ylabel("requests/s (200 only)")
    ax1.set_title(f"throughput: ratio {summary['ratio']:.2f} (bar {BAR})")
    x = range(2)
    ax2.bar([i - 0.2 for i in x], [base["p50_ms"], kafka["p50_ms"]], 0.4, label="p50")
    ax2.bar([i + 0.2 for i in x], [base["p99_ms"], kafka["p99_ms"]], 0.4, label="p99")
    ax2.set_xticks(list(x), labels)
    ax2.set_ylabel("latency (ms)")
    ax2.set_title(f"latency, {summary['connections']} connections")
    ax2.legend()
    fig.suptitle(f"callstream gateway, load generator: {summary['client']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def best_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the most requests/s: other load on the machine only ever lowers throughput,
    so the best round is the least disturbed estimate of capacity (like ``timeit``'s minimum).
    CPU per request is the median over rounds (waiting for the CPU costs none)."""
    best = dict(max(runs, key=lambda r: r["rps"]))
    best["server_cpu_us_per_request"] = statistics.median(
        r["server_cpu_us_per_request"] for r in runs
    )
    best["ok_all_rounds"] = sum(r["ok"] for r in runs)
    best["non_2xx_all_rounds"] = sum(r["non_2xx"] for r in runs)
    best["socket_errors_all_rounds"] = sum(r["socket_errors"] for r in runs)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measured time per run")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3, help="baseline/kafka pairs")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--client", choices=["wrk", "aiohttp"], default=None)
    parser.add_argument("--server-cpu", type=int, default=0, help="-1: do not pin")
    parser.add_argument("--client-cpu", type=int, default=1, help="-1: do not pin")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--linger-ms", type=int, default=None)
    parser.add_argument("--batch-num-messages", type=int, default=None)
    parser.add_argument(
        "--compare-aio",
        action="store_true",
        help="also compare the gateway's writer with confluent_kafka.aio.AIOProducer",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "gateway.json")
    # internal: the server child process
    parser.add_argument("--serve", choices=["null", "kafka"], help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, default=None, help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)

    from producers.gateway.settings import GatewaySettings

    defaults = GatewaySettings()
    if opts.linger_ms is None:
        opts.linger_ms = defaults.linger_ms
    if opts.batch_num_messages is None:
        opts.batch_num_messages = defaults.batch_num_messages
    if opts.serve:
        serve_main(opts)
        return 0

    ncpu = len(os.sched_getaffinity(0))
    opts.server_cpu = None if opts.server_cpu < 0 or ncpu < 2 else opts.server_cpu
    opts.client_cpu = None if opts.client_cpu < 0 or ncpu < 2 else opts.client_cpu
    if opts.client is None:
        opts.client = "wrk" if shutil.which("wrk") else "aiohttp"

    load_at_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        opts.wrk_script = Path(tmp) / "post.lua"
        opts.wrk_script.write_text(WRK_SCRIPT % BODY.decode())
        broker = None
        bootstrap = os.environ.get("CALLSTREAM_KAFKA_BOOTSTRAP_SERVERS", "").strip()
        if not bootstrap:
            broker = start_private_broker(Path(tmp) / "kafka")
            bootstrap = broker.bootstrap_servers
        try:
            topic = f"bench.callbacks.raw-{uuid.uuid4().hex[:8]}"
            create_topic(bootstrap, topic, opts.partitions)
            runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "kafka": []}
            for i in range(opts.rounds):
                for mode, key in (("null", "baseline"), ("kafka", "kafka")):
                    r = measure(mode, bootstrap, topic, opts)
                    runs[key].append(r)
                    print(
                        f"round {i + 1} {key:8s} {r['rps']:9.0f} req/s  p50 {r['p50_ms']:6.2f} ms"
                        f"  p99 {r['p99_ms']:6.2f} ms  server cpu {r['server_cpu_percent']:4.0f}%"
                        f" ({r['server_cpu_us_per_request']:.0f} us/req)"
                        f"  client cpu {r['client_cpu_percent']:3.0f}%"
                        f"  non-2xx {r['non_2xx']}",
                        flush=True,
                    )
            stored = topic_records(bootstrap, topic)
            writers = compare_writers(bootstrap, topic, opts) if opts.compare_aio else None
        finally:
            if broker is not None:
                broker.stop()

    base, kafka = best_of(runs["baseline"]), best_of(runs["kafka"])
    paired = [k["rps"] / b["rps"] for b, k in zip(runs["baseline"], runs["kafka"], strict=True)]
    summary: dict[str, Any] = {
        "benchmark": "gateway",
        "ratio": kafka["rps"] / base["rps"],
        "paired_round_ratios": paired,
        # CPU time per request is robust to other load on the machine (waiting costs no CPU)
        "cpu_ratio": base["server_cpu_us_per_request"] / kafka["server_cpu_us_per_request"],
        "bar": BAR,
        "passed": kafka["rps"] / base["rps"] >= BAR,
        "baseline": base,
        "kafka": kafka,
        "kafka_records_in_topic": stored,
        "kafka_200s_all_stored": stored >= kafka["ok_all_rounds"],
        "load_average_at_start": load_at_start,
        "client": "wrk -t1" if opts.client == "wrk" else "aiohttp (own process)",
        "connections": opts.connections,
        "seconds_per_run": opts.seconds,
        "rounds": opts.rounds,
        "server_cpu": opts.server_cpu,
        "client_cpu": opts.client_cpu,
        "cpus": os.cpu_count(),
        "producer": {
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": opts.linger_ms,
            "batch.num.messages": opts.batch_num_messages,
            "compression.type": defaults.compression_type,
        },
        "partitions": opts.partitions,
        "body_bytes": len(BODY),
        "runs": runs,
        "writer_comparison": writers,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(summary, indent=2) + "\n")
    chart(summary, opts.out.with_suffix(".png"))

    print()
    print(f"{'mode':<22}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'server cpu':>12}{'us/req':>9}")
    for name, r in (("no Kafka (baseline)", base), ("Kafka acks=all", kafka)):
        print(
            f"{name:<22}{r['rps']:>10.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
            f"{r['server_cpu_percent']:>11.0f}%{r['server_cpu_us_per_request']:>9.0f}"
        )
    verdict = "PASS" if summary["passed"] else "FAIL"
    pairs = ", ".join(f"{x:.2f}" for x in paired)
    print(f"best round of each mode above; paired round ratios {pairs}")
    print(f"cpu ratio (baseline us/req / kafka us/req) {summary['cpu_ratio']:.2f}")
    print(
        f"ratio {summary['ratio']:.2f} (bar {BAR}): {verdict}; load generator: {summary['client']}"
    )
    print(
        f"records in topic {stored} >= 200s answered {kafka['ok_all_rounds']}: "
        f"{summary['kafka_200s_all_stored']}"
    )
    if writers is not None:
        for name, figures in writers.items():
            if isinstance(figures, dict):
                print(
                    f"{name:<52}{figures['writes_per_s']:>9.0f} writes/s"
                    f"{figures['cpu_us_per_write']:>7.1f} us cpu/write"
                )
        print(f"AIOProducer accepts headers: {writers['aio_producer_accepts_headers']}")
    print(f"wrote {opts.out} and {opts.out.with_suffix('.png')}")
    return 0 if summary["passed"] and summary["kafka_200s_all_stored"] else 1


if __name__ == "__main__":
    sys.exit(main())
