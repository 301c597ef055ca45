"""``make bench`` / ``python -m bench``: every benchmark, one after the other, then one table.

Each benchmark measures its own baseline in the same run and writes ``bench/results/<name>.json``
and a PNG chart; this runner only sequences them (they must not overlap: two cores) and prints
the ratios side by side. Exit code 1 when any bar is missed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
RUNS: list[tuple[str, list[str]]] = [
    ("sandbox", ["bench.bench_sandbox"]),
    ("gateway", ["bench.bench_gateway"]),
    ("normalize", ["bench.bench_normalize"]),
    ("dispatch", ["bench.bench_dispatch"]),
    (
        "dispatch-latency50ms",
        [
            "bench.bench_dispatch",
            "--platform-latency-ms",
            "50",
            "--backlog",
            "100000",
            "--records",
            "10000",
            "--naive-records",
            "300",
        ],
    ),
]


def main() -> int:
    failed = []
    for name, module in RUNS:
        print(f"\n=== {name}", flush=True)
        result = subprocess.run([sys.executable, "-m", *module], check=False, timeout=1800)
        if result.returncode != 0:
            failed.append(name)
    print("\n=== summary (bench/results/*.json)")
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        passes = data.get("pass")
        print(f"{path.stem:<24} {json.dumps(passes) if passes is not None else ''}")
    if failed:
        print(f"bars missed or errors in: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
