"""Whole runs on the controlled testbed: the wall time of a `qcrd` run against a `dss` run
(and any other methods) at the same steps, on synth-arith with its default preset (`synth-quick`,
the quick start's) or another one (`--preset synth`, the calibrated budget the suites use).

    python benchmarks/perf/synth_runs.py --methods dss,qcrd --out synth_runs.json
    python benchmarks/perf/synth_runs.py --preset synth --threads 2
    python benchmarks/perf/synth_runs.py --set train.steps=200 --set discriminator.update_fraction=0.5

Each method runs as `qcrd-bench run -m M -t synth-arith` in a process of its own, one after
the other, into a temporary tracking store.  Reported per method: the run's wall time
(`time/run_seconds`: data, teacher, student, judge pre-training, training, validation,
test and rationale decoding), its training throughput (mean `train/examples_per_s`) and
test accuracies; and each method's wall time as a ratio to the first one's (the issue's
goal: qcrd / dss <= 3).  Numbers come from the runs' own metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run(method: str, uri: str, sets: list[str], threads: int, preset: str | None) -> dict:
    command = [sys.executable, "-m", "qcrd_bench.cli", "run", "-m", method, "-t", "synth-arith", "--json",
               "--tracking-uri", uri, "--set", f"train.threads={threads}", "--set", "train.checkpoint_every=0"]
    command += ["--preset", preset] if preset else []
    for item in sets:
        command += ["--set", item]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{method} failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    summary = json.loads(done.stdout)
    import mlflow

    history = mlflow.MlflowClient(uri).get_metric_history(summary["run_id"], "train/examples_per_s")
    summary["train_examples_per_s"] = statistics.mean(m.value for m in history) if history else None
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="dss,qcrd", help="comma-separated; ratios are to the first")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for every run (repeatable), e.g. --set train.steps=300")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--preset", default=None, help="default: the task's (synth-quick)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        results = {m: run(m, uri, args.sets, args.threads, args.preset) for m in methods}
    base = results[methods[0]]["time/run_seconds"]
    print(f"| method | run wall s | x {methods[0]} | train ex/s | test acc | rationale answer acc |")
    print("|---|---|---|---|---|---|")
    for method, r in results.items():
        rate = r["train_examples_per_s"]
        print(f"| {method} | {r['time/run_seconds']:.0f} | {r['time/run_seconds'] / base:.2f} | "
              f"{'–' if rate is None else f'{rate:.1f}'} | {100 * r['test/accuracy']:.1f} | "
              f"{100 * r.get('test/rationale_answer_accuracy', float('nan')):.1f} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"preset": args.preset, "sets": args.sets, "threads": args.threads,
                                              "runs": results}, indent=2)
                                  + "\n")


if __name__ == "__main__":
    main()
