"""Finetune vs DSS on SVAMP with the `cpu` preset, several seeds, then mean ± std.

    QCRD_BENCH_DATA_DIR=../shared/data python benchmarks/cpu_svamp.py --seeds 0 1 2

Each (method, seed) is one `qcrd-bench run` in experiment `cpu-svamp` of the tracking
store; finished (method, seed) pairs are skipped on a re-run, so an interrupted
sweep resumes.  The table is computed from the store, not from this process.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

import mlflow

METRICS = ("test/accuracy", "final/test_accuracy", "best/val_accuracy", "eval/parse_rate", "time/run_seconds")


def finished(client, experiment: str) -> dict[tuple[str, str], mlflow.entities.Run]:
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return {}
    runs = client.search_runs([exp.experiment_id], "attributes.status = 'FINISHED' and tags.`qcrd.preset` = 'cpu'")
    return {(r.data.tags["qcrd.method"], r.data.tags["qcrd.seed"]): r for r in runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["finetune", "dss"])
    parser.add_argument("--seeds", nargs="+", default=["0", "1", "2"])
    parser.add_argument("--experiment", default="cpu-svamp")
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    args = parser.parse_args()
    client = mlflow.MlflowClient(args.tracking_uri)
    for method in args.methods:  # every seed of one method first: a partial sweep still compares within it
        for seed in args.seeds:
            if (method, seed) in finished(client, args.experiment):
                continue
            subprocess.run(["qcrd-bench", "run", "-m", method, "-t", "svamp", "--preset", "cpu", "--seed", seed,
                            "--experiment", args.experiment, "--tracking-uri", args.tracking_uri], check=True)
    runs = finished(client, args.experiment)
    print("| method | n | " + " | ".join(METRICS) + " |")
    print("|---|---|" + "---|" * len(METRICS))
    for method in args.methods:
        chosen = [runs[(method, s)] for s in args.seeds if (method, s) in runs]
        cells = []
        for metric in METRICS:
            values = [r.data.metrics[metric] for r in chosen if metric in r.data.metrics]
            scale = 1 if metric.startswith("time") else 100
            if len(values) > 1:
                cells.append(f"{scale * statistics.mean(values):.1f} ± {scale * statistics.stdev(values):.1f}")
            else:
                cells.append(f"{scale * values[0]:.1f}" if values else "–")
        print(f"| {method} | {len(chosen)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
