"""One `qcrd` training step against one `dss` step on the same student and batch.

    QCRD_BENCH_DATA_DIR=../shared/data python benchmarks/perf/qcrd_step.py --student t5-mini --out result.json

The batch: B SVAMP training questions; dss trains on one MCC-KD rationale each, qcrd on
K = 5 positives and 1 student negative each (sampled beforehand: self-play sampling
happens once per example per iteration and is timed separately), scored by the
encoder-maxpool judge, which is updated by L_D in the same step.  Reports the median
step time of each and their ratio (goal: qcrd / dss <= 2.0), plus sampling throughput.
This is section 2 and 4 of ``run_all.py`` on its own (the code lives in ``harness.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", default="t5-mini")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="see run_all.py --help")
    parser.add_argument("--mixed-precision", choices=("no", "bf16"), default="no",
                        help="train.mixed_precision of both steps (bf16: autocast, as the cpu preset trains)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import torch

    import harness

    torch.set_num_threads(args.threads)
    harness.set_clock(args.clock)
    setup = harness.qcrd_setup(args.student, args.batch, args.threads, mixed_precision=args.mixed_precision)
    result = harness.qcrd_vs_dss(setup, args.steps, args.warmup)
    report = {"student": args.student, "n_params": harness.n_params(setup.student.model), "threads": args.threads,
              "mixed_precision": args.mixed_precision, "clock": args.clock, **result}
    print(f"| step | median s |\n|---|---|\n| dss | {result['dss_step_s_median']:.3f} |\n"
          f"| qcrd | {result['qcrd_step_s_median']:.3f} |\nqcrd/dss = {result['qcrd_over_dss']:.2f} (goal <= 2.0); "
          f"self-play sampling {result['selfplay_rationales_per_s']:.1f} rationales/s; "
          f"judge scoring {result['discriminator_pairs_per_s']:.1f} pairs/s")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
