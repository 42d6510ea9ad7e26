"""Wall time of one small sweep under each executor: sequential, `--workers 2`, and Ray.

    QCRD_BENCH_DATA_DIR=../shared/data python benchmarks/perf/sweep_executors.py [--steps 20] [--out sweep.json]

The sweep is 4 smoke children (dss and finetune × seeds 0 and 1, `--limit 32`), each in a
fresh SQLite store.  Sequential children get all the machine's cores as torch threads;
with `--workers 2` and on a local Ray instance each of 2 concurrent children gets half.
Every child is the same cell in each case (the config hash ignores the thread count), so
the figures compare executors, not work.  Prints the table and the speed-ups against
sequential; with --out writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def sweep(extra: list[str], steps: int, threads: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "qcrd_bench.cli", "ablate", "-m", "dss,finetune", "--seeds", "0,1",
                   "--task", "svamp", "--preset", "smoke", "--limit", "32", "--set", f"train.steps={steps}",
                   "--set", f"train.threads={threads}", "--tracking-uri", f"sqlite:///{tmp}/mlflow.db", *extra]
        started = time.perf_counter()
        proc = subprocess.run(command, cwd=tmp, capture_output=True, text=True)
        seconds = time.perf_counter() - started
    if proc.returncode != 0 or "4 ran" not in proc.stdout:
        sys.exit(f"sweep {' '.join(extra) or 'sequential'} failed:\n{proc.stdout}\n{proc.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="training steps per child")
    parser.add_argument("--out", type=Path, help="write the figures as JSON")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    half = max(1, cores // 2)
    seconds = {
        "sequential": sweep([], args.steps, cores),
        "workers-2": sweep(["--workers", "2"], args.steps, half),
        "ray-2": sweep(["--executor", "ray", "--cpus-per-child", str(half)], args.steps, half),
    }
    result = {"cores": cores, "children": 4, "steps": args.steps, "seconds": seconds,
              "speedup_over_sequential": {k: seconds["sequential"] / v for k, v in seconds.items()}}
    for name, value in seconds.items():
        print(f"{name:<12} {value:7.1f} s   {result['speedup_over_sequential'][name]:.2f}x sequential")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
