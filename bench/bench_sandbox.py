"""Sandbox request rate vs a bare aiohttp server, on one core each.

    python -m bench.bench_sandbox [--rounds 7] [--duration 3] [--connections 64]

Each server runs in its own subprocess pinned to core 0 (``os.sched_setaffinity``), on the
same framework and loop (aiohttp on uvloop, ``sandbox.server``): the sandbox with callbacks off,
and a bare server answering a fixed 201 with a body like the sandbox's. The load generator is
``wrk`` (POST bodies from a Lua script, a fresh correlation id per request) pinned to core 1.
Rounds alternate the servers; each round gives a paired ratio, and the median ratio is what
the bar (>= 0.7, and >= 5,000 req/s for the sandbox) is checked against, because absolute
numbers drift on a shared machine. Results: ``bench/results/sandbox.json`` and ``.png``.

The sandbox hands each answer to aiohttp one turn of the event loop after computing it, so
answers leave in bursts and wake wrk less often (``sandbox.app.make_call_handler``). A third
server, the bare one with that same turn ("bare + turn"), is measured too and its ratio reported
beside the bar's, so the figure cannot owe anything to the turn alone.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
MIN_RATE = 5000.0
MIN_RATIO = 0.7
KINDS = ("sandbox", "bare", "bare-turn")
NAMES = {"sandbox": "sandbox", "bare": "bare aiohttp", "bare-turn": "bare + turn"}
LUA = r"""
wrk.method = "POST"
wrk.headers["key"] = "sandbox-key"
wrk.headers["Content-Type"] = "application/json"
local counter = 0
local prefix = tostring(os.time()) .. "-" .. tostring(math.random(1, 1000000000))
request = function()
  counter = counter + 1
  local body = '{"channel":"voice","from":"+14155550100","to":[{"msisdn":["+14155550123"],'
    .. '"correlationId":"' .. prefix .. '-' .. counter .. '"}],"callbackData":"bench",'
    .. '"content":{"type":"TtS","ttsProcessor":"Azure","language":"en-US",'
    .. '"voice":"GuyNeural","region":"Canada","text":"Time for lunch"}}'
  return wrk.format(nil, "/v2/messages", nil, body)
end
"""


def serve(kind: str, port: int, cpu: int | None) -> None:
    """Subprocess entry: pin to ``cpu`` and serve the sandbox or the bare server."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    import asyncio

    import orjson
    from aiohttp import web

    from sandbox.app import build_app
    from sandbox.server import run, serve_forever
    from sandbox.settings import SandboxSettings

    if kind == "sandbox":
        app = build_app(SandboxSettings(callbacks=False, port=port, log_level="WARNING"))
    else:
        body = orjson.dumps(
            {
                "requestTimestamp": "2024-09-05T00:03:01.708-04:00",
                "messageId": "0b8e4f7a-5d3c-4b9e-9c1a-2f6d8e7a1b3c",
                "correlationId": "1700000000-123456789-1",
                "status": "queued",
            }
        )

        async def make_call(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(status=201, body=body, content_type="application/json")

        async def make_call_after_turn(request: web.Request) -> web.Response:
            await request.read()
            answer = web.Response(status=201, body=body, content_type="application/json")
            await asyncio.sleep(0)
            return answer

        async def health(_: web.Request) -> web.Response:
            return web.Response(body=b'{"status":"ok"}', content_type="application/json")

        app = web.Application()
        app.router.add_post("/v2/messages", make_call if kind == "bare" else make_call_after_turn)
        app.router.add_get("/_sandbox/health", health)
    run(serve_forever(app, "127.0.0.1", port))


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if shutil.which("apt-get") and os.geteuid() == 0:
        print("wrk not found: installing it with apt-get (Debian package 'wrk')", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, capture_output=True)
        found = shutil.which("wrk")
        if found:
            return found
    sys.exit("wrk is required (Debian/Ubuntu: apt-get install -y wrk; macOS: brew install wrk)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/_sandbox/health", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(
    wrk: str, script: Path, url: str, args: argparse.Namespace, cpu: int | None, pid: int
) -> tuple[float, float]:
    """One wrk run: (requests/s, requests per CPU-second of the server)."""
    cmd = [wrk, "-t1", f"-c{args.connections}", f"-d{args.duration}s", "-s", str(script), url]
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    before = cpu_seconds(pid)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    used = cpu_seconds(pid) - before
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if rate is None or "Non-2xx" in out or "Socket errors" in out:
        print(out, file=sys.stderr)
    if rate is None or total is None:
        raise RuntimeError("could not read wrk's output")
    return float(rate.group(1)), int(total.group(1)) / max(used, 1e-9)


def chart(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_cpu) = plt.subplots(1, 2, figsize=(11, 4))
    names = [NAMES[kind] for kind in KINDS]
    colors = ["#2b7bb9", "#999999", "#cccccc"]
    for axis, metric, title in (
        (ax, "median_rps", f"wall clock, one core: ratio {result['ratio_median']:.2f}"),
        (
            ax_cpu,
            "median_requests_per_cpu_second",
            f"per CPU-second: ratio {result['cpu_ratio_median']:.2f}",
        ),
    ):
        values = [result[kind.replace("-", "_")][metric] for kind in KINDS]
        bars = axis.bar(names, values, color=colors)
        axis.bar_label(bars, labels=[f"{v:,.0f}" for v in values])
        axis.axhline(MIN_RATE, color="red", linestyle="--", label=f"bar: {MIN_RATE:,.0f} req/s")
        axis.set_title(title)
    ax.set_ylabel("requests/s (median of rounds)")
    ax_cpu.set_ylabel("requests per server CPU-second (median)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--serve", choices=list(KINDS), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.cpu)
        return 0

    wrk = ensure_wrk()
    load_before = os.getloadavg()[0]
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu, load_cpu = (cpus[0], cpus[1]) if len(cpus) > 1 else (None, None)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    urls: dict[str, str] = {}
    rates: dict[str, list[float]] = {kind: [] for kind in KINDS}
    per_cpu: dict[str, list[float]] = {kind: [] for kind in KINDS}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(LUA)
        try:
            for kind in KINDS:
                port = free_port()
                cmd = [sys.executable, "-m", "bench.bench_sandbox", "--serve", kind]
                cmd += ["--port", str(port)]
                if server_cpu is not None:
                    cmd += ["--cpu", str(server_cpu)]
                procs[kind] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
                urls[kind] = f"http://127.0.0.1:{port}"
            for url in urls.values():
                wait_ready(url)
            for round_no in range(args.rounds):
                shift = round_no % len(KINDS)
                for kind in KINDS[shift:] + KINDS[:shift]:
                    rate, capacity = run_wrk(
                        wrk, script, urls[kind], args, load_cpu, procs[kind].pid
                    )
                    rates[kind].append(rate)
                    per_cpu[kind].append(capacity)
            with urllib.request.urlopen(urls["sandbox"] + "/_sandbox/ledger/summary") as resp:
                summary = json.loads(resp.read())
        finally:
            for proc in procs.values():
                proc.terminate()
                proc.wait(10)

    def paired(values: dict[str, list[float]], base: str) -> list[float]:
        return [s / b for s, b in zip(values["sandbox"], values[base], strict=True)]

    ratios, cpu_ratios = paired(rates, "bare"), paired(per_cpu, "bare")
    turn_ratios, turn_cpu_ratios = paired(rates, "bare-turn"), paired(per_cpu, "bare-turn")
    result: dict[str, Any] = {
        "cpus": {"server": server_cpu, "load_generator": load_cpu},
        "load_generator": f"wrk -t1 -c{args.connections} -d{args.duration}s",
        "rounds": args.rounds,
        "loadavg_before": load_before,
        **{
            kind.replace("-", "_"): {
                "rps": rates[kind],
                "median_rps": statistics.median(rates[kind]),
                "requests_per_cpu_second": per_cpu[kind],
                "median_requests_per_cpu_second": statistics.median(per_cpu[kind]),
            }
            for kind in KINDS
        },
        "ratios": ratios,
        "ratio_median": statistics.median(ratios),
        "cpu_ratios": cpu_ratios,
        "cpu_ratio_median": statistics.median(cpu_ratios),
        "ratios_vs_bare_turn": turn_ratios,
        "ratio_vs_bare_turn_median": statistics.median(turn_ratios),
        "cpu_ratio_vs_bare_turn_median": statistics.median(turn_cpu_ratios),
        "sandbox_answers": summary["by_status"],
    }
    result["pass"] = (
        result["sandbox"]["median_rps"] >= MIN_RATE and result["ratio_median"] >= MIN_RATIO
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sandbox.json").write_text(json.dumps(result, indent=2) + "\n")
    chart(result, RESULTS / "sandbox.png")

    for title, values, bar_ratios, turn in (
        ("requests/s", rates, ratios, turn_ratios),
        (
            "requests per CPU-second of the server (robust to other load)",
            per_cpu,
            cpu_ratios,
            turn_cpu_ratios,
        ),
    ):
        print(f"\n{title}\n{'server':<14}{'median':>12}{'best':>12}   per round")
        for kind in KINDS:
            r = values[kind]
            rounds = " ".join(f"{v:,.0f}" for v in r)
            print(f"{kind:<14}{statistics.median(r):>12,.0f}{max(r):>12,.0f}   {rounds}")
        print(
            f"{'ratio':<14}{statistics.median(bar_ratios):>12.2f}{max(bar_ratios):>12.2f}"
            f"   vs bare (bar {MIN_RATIO})"
        )
        print(f"{'ratio':<14}{statistics.median(turn):>12.2f}{max(turn):>12.2f}   vs bare + turn")
    print(f"load average before the run: {load_before:.2f} on {os.cpu_count()} CPUs")
    print(f"sandbox answers: {summary['by_status']}")
    print(f"{'PASS' if result['pass'] else 'FAIL'}: results in {RESULTS / 'sandbox.json'}")
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
