"""qcrd-bench performance harness: every figure of benchmarks/perf/README.md in one run.

    QCRD_BENCH_DATA_DIR=../shared/data python benchmarks/perf/run_all.py --student t5-mini --threads 2 --out perf.json

Measures, on one student, one SVAMP data set and one batch size:
  1. dss training throughput: our `train` (StepLoss + AdamW) vs a Seq2SeqTrainer doing DSS
     the way google-research/distilling-step-by-step does (goal: ours/reference >= 1.3);
  2. one qcrd step vs one dss step (K = 5 positives, 1 negative; goal: qcrd/dss <= 2.0);
  3. evaluation decoding: batched greedy `evaluation.generate` vs `model.generate` per
     example (goal: >= 5x);
  4. self-play sampling (rationales/s) and judge scoring (pairs/s);
  5. CLI start-up (`--help`, `list`; goal < 0.5 s) and a dss smoke run's wall time and peak RSS;
  6. FLOPs of a dss step and the achieved share of the measured fp32 matmul peak.
Prints a table and, with --out, writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

GOALS = {  # (section, key): (comparison, target)
    ("dss_training", "ours_over_reference"): (">=", 1.3),
    ("qcrd_step", "qcrd_over_dss"): ("<=", 2.0),
    ("decode", "batched_over_per_example"): (">=", 5.0),
    ("cli", "help_s_median"): ("<", 0.5),
    ("cli", "list_s_median"): ("<", 0.5),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", default="t5-mini", help="t5-tiny or t5-mini (config-built, offline)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (and the smoke run's)")
    parser.add_argument("--batch", type=int, default=16, help="training batch size (both trainers, qcrd and dss)")
    parser.add_argument("--steps", type=int, default=30,
                        help="timed optimizer steps per trainer in the dss comparison (after 1 warm-up step)")
    parser.add_argument("--qcrd-steps", type=int, default=8, help="timed steps of qcrd and of dss (after 1 warm-up)")
    parser.add_argument("--decode-n", type=int, default=64, help="test questions decoded each way")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="greedy decoding length limit")
    parser.add_argument("--cli-repeats", type=int, default=3, help="runs of each CLI command (median)")
    parser.add_argument("--matmul-size", type=int, default=2048, help="side of the square matmul timed for the peak")
    parser.add_argument("--skip-smoke", action="store_true", help="skip the smoke run (CLI start-up is still timed)")
    parser.add_argument("--smoke-extra", default="", help="extra arguments for the smoke run, e.g. '--limit 16'")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: elapsed time; cpu: this process's (a child's) CPU time, which is not "
                             "charged while another process holds the core (use it on a shared core, 1 thread)")
    parser.add_argument("--out", default=None, help="write the results as JSON to this file")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    import harness

    torch.set_num_threads(args.threads)
    harness.set_clock(args.clock)
    started = time.perf_counter()
    report: dict[str, Any] = {"machine": harness.machine(args.threads), "clock": args.clock}
    timings: dict[str, float] = {}

    def phase(name: str, fn, *a, **kw):
        start = time.perf_counter()
        result = fn(*a, **kw)
        timings[name] = time.perf_counter() - start
        return result

    catalog = harness.load_catalog()
    dss_setup = phase("setup_dss", harness.make_setup, "dss", args.student, args.batch, args.threads, catalog)
    report["config"] = {"student": args.student, "n_params": harness.n_params(dss_setup.student.model),
                        "batch": args.batch, "task": "svamp", "teacher_dss": dss_setup.config["teacher"]["name"],
                        "max_input_length": harness.MAX_INPUT_LENGTH, "max_target_length": harness.MAX_TARGET_LENGTH,
                        "lr": dss_setup.config["train"]["lr"], "alpha": dss_setup.config["loss"]["alpha"]}
    dss = phase("dss_training", harness.dss_training, dss_setup, args.steps)
    report["compute"] = phase("compute", harness.efficiency, dss_setup, dss, args.matmul_size)
    report["dss_training"] = {k: v for k, v in dss.items() if not k.startswith("_")}
    report["decode"] = phase("decode", harness.decode, dss_setup, args.decode_n, args.max_new_tokens,
                             fresh_state=dss["_initial_state"])
    del dss
    del dss_setup
    qcrd_setup = phase("setup_qcrd", harness.qcrd_setup, args.student, args.batch, args.threads, catalog)
    step = phase("qcrd_step", harness.qcrd_vs_dss, qcrd_setup, args.qcrd_steps)
    report["selfplay"] = {"rationales_per_s": step.pop("selfplay_rationales_per_s"), "batch": step["batch"],
                          "temperature": 1.5, "max_new_tokens": harness.MAX_TARGET_LENGTH}
    report["discriminator"] = {"pairs_per_s": step.pop("discriminator_pairs_per_s"),
                               "train_pairs_per_s": step.pop("discriminator_train_pairs_per_s"),
                               "pairs": step.pop("discriminator_pairs"), "encoder": "student"}
    report["qcrd_step"] = step
    del qcrd_setup
    report["cli"] = phase("cli", harness.cli, args.threads, args.cli_repeats, not args.skip_smoke, args.smoke_extra)
    timings["total"] = time.perf_counter() - started
    report["harness_seconds"] = timings
    report["goals"] = {f"{section}.{key}": {"goal": f"{op} {target}", "value": report[section][key],
                                            "met": _meets(report[section][key], op, target)}
                       for (section, key), (op, target) in GOALS.items()}
    return report


def _meets(value: float, op: str, target: float) -> bool:
    return {">=": value >= target, "<=": value <= target, "<": value < target}[op]


def table(report: dict[str, Any]) -> str:
    d, q, e = report["dss_training"], report["qcrd_step"], report["decode"]
    c, f, cfg, m = report["cli"], report["compute"], report["config"], report["machine"]
    goals = report["goals"]

    def goal(key: str) -> str:
        g = goals[key]
        return f"{g['goal']} | {'yes' if g['met'] else 'no'}"

    rows = [
        ("dss train, ours (examples/s)", f"{d['ours_examples_per_s']:.1f}", "", ""),
        ("dss train, Seq2SeqTrainer reference (examples/s)", f"{d['reference_examples_per_s']:.1f}", "", ""),
        ("dss train, ours / reference", f"{d['ours_over_reference']:.2f}x", *goal("dss_training.ours_over_reference").split(" | ")),
        ("dss train, ours with train.group_by_length=8 / reference",
         f"{d['ours_grouped_over_reference']:.2f}x ({d['ours_grouped_examples_per_s']:.1f} examples/s)", "", ""),
        ("dss step median, ours / reference (s)",
         f"{d['ours_step_s_median']:.3f} / {d['reference_step_s_median']:.3f}", "", ""),
        ("tokenising the pool, ours / reference (s)", f"{d['ours_tokenise_s']:.3f} / {d['reference_tokenise_s']:.3f}",
         "", ""),
        ("dss batch padding, encoder / decoder positions",
         f"{100 * d['padding_share_encoder']:.0f}% / {100 * d['padding_share_decoder']:.0f}%", "", ""),
        ("  same, batches length-grouped (estimate)",
         f"{100 * d['padding_share_encoder_grouped']:.0f}% / {100 * d['padding_share_decoder_grouped']:.0f}%", "", ""),
        (f"qcrd step (K=5, 1 neg) / dss step, batch {q['batch']}",
         f"{q['qcrd_over_dss']:.2f}x ({q['qcrd_step_s_median']:.3f} / {q['dss_step_s_median']:.3f} s)",
         *goal("qcrd_step.qcrd_over_dss").split(" | ")),
        (f"decode {e['n']} questions, trained {d['steps'] + 1} steps, batched (examples/s)", f"{e['batched_examples_per_s']:.1f}", "", ""),
        ("decode, model.generate per example (examples/s)", f"{e['per_example_examples_per_s']:.1f}", "", ""),
        ("decode, batched / per example", f"{e['batched_over_per_example']:.1f}x",
         *goal("decode.batched_over_per_example").split(" | ")),
        ("decode output tokens, mean / max (gold labels: mean)",
         f"{e['mean_output_tokens']:.1f} / {e['max_output_tokens']} ({e['gold_label_mean_tokens']:.1f})", "", ""),
        ("decode, untrained student, batched / per example (examples/s)",
         f"{e['fresh_batched_examples_per_s']:.1f} / {e['fresh_per_example_examples_per_s']:.1f}", "", ""),
        (f"decode, untrained student (outputs {e['fresh_mean_output_tokens']:.0f} tokens), batched / per example",
         f"{e['fresh_batched_over_per_example']:.1f}x", "", ""),
        ("self-play sampling (rationales/s)", f"{report['selfplay']['rationales_per_s']:.1f}", "", ""),
        ("judge scoring, no grad (pairs/s)", f"{report['discriminator']['pairs_per_s']:.1f}", "", ""),
        ("judge scoring + backward, as for L_D (pairs/s)", f"{report['discriminator']['train_pairs_per_s']:.1f}", "",
         ""),
        ("`qcrd-bench --help` (s, median)", f"{c['help_s_median']:.2f}", *goal("cli.help_s_median").split(" | ")),
        ("`qcrd-bench list` (s, median)", f"{c['list_s_median']:.2f}", *goal("cli.list_s_median").split(" | ")),
    ]
    if "smoke_wall_s" in c:
        rows.append(("dss smoke run: wall s / CPU s / peak RSS MB",
                     f"{c['smoke_wall_s']:.1f} / {c['smoke_cpu_s']:.1f} / {c['smoke_peak_rss_mb']:.0f}", "", ""))
    rows += [
        ("dss step FLOPs, ours / reference (GFLOP)",
         f"{f['ours_flops_per_step'] / 1e9:.2f} / {f['reference_flops_per_step'] / 1e9:.2f}", "", ""),
        (f"fp32 matmul peak, {f['matmul_size']}² (GFLOP/s)", f"{f['matmul_peak_flop_per_s'] / 1e9:.1f}", "", ""),
        ("dss step achieved, ours / reference (GFLOP/s)",
         f"{f['ours_flop_per_s'] / 1e9:.2f} / {f['reference_flop_per_s'] / 1e9:.2f}", "", ""),
        ("share of matmul peak, ours / reference",
         f"{f['ours_efficiency_pct']:.1f}% / {f['reference_efficiency_pct']:.1f}%", "", ""),
    ]
    head = (f"student {cfg['student']} ({cfg['n_params'] / 1e6:.2f}M params), batch {cfg['batch']}, "
            f"{d['steps']} timed steps per trainer, {m['threads']} thread(s), {report['clock']} clock, torch {m['torch']}, "
            f"transformers {m['transformers']}, cores {m['affinity']}; harness {report['harness_seconds']['total']:.0f} s")
    lines = [head, "", "| measurement | value | goal | met |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {g} | {ok} |" for a, b, g, ok in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report = run(args)
    print(table(report))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
