"""One `qcrd` training step against one `dss` step on the same student and batch.

    QCRD_BENCH_DATA_DIR=../shared/data python benchmarks/perf/qcrd_step.py --student t5-mini --out result.json

The batch: B SVAMP training questions; dss trains on one MCC-KD rationale each, qcrd on
K = 5 positives and 1 student negative each (sampled beforehand: self-play sampling
happens once per example per iteration and is timed separately), scored by the
encoder-maxpool judge, which is updated by L_D in the same step.  Reports the median
step time of each and their ratio (goal: qcrd / dss <= 2.0), plus sampling throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from qcrd_bench.components import TrainContext
from qcrd_bench.plugins import load_catalog
from qcrd_bench.config import resolve
from qcrd_bench.runner import build_student, prepare
from qcrd_bench.selfplay import sample
from qcrd_bench.training import Judge, StepLoss, Tokens, encode_examples
from qcrd_bench.evaluation import EXPLAIN


class FixedNegatives:
    def __init__(self, texts):
        self.texts = texts

    def negatives(self, examples, step):
        return [[self.texts[e.id]] for e in examples]

    def samples(self):
        return []


def time_steps(fn, items, params, optimizer, judge, steps: int) -> list[float]:
    times = []
    for step in range(1, steps + 1):
        start = time.perf_counter()
        out = fn(items, step)
        out.total.backward()
        optimizer.step()
        optimizer.zero_grad()
        if judge.discriminator is not None:
            judge.discriminator.step()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", default="t5-mini")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    catalog = load_catalog()
    cli = {"student.name": args.student, "discriminator.pretrain_steps": 0, "train.max_target_length": 64}
    if args.student == "t5-tiny":
        cli["student.vocab_size"] = 2048
    config = resolve(catalog, "qcrd", "svamp", "smoke", None, cli)
    prep = prepare(catalog, config)
    # Questions with 5 positives after the majority vote, so K = 5 exactly.
    chosen = [e for e in prep.data.train if len(prep.positives.get(e.id, [])) == 5][: args.batch]
    student = build_student(catalog, config, prep.data, prep.positives)
    device = torch.device("cpu")
    tokens = Tokens(student.tokenizer, config, student.model.config.decoder_start_token_id)

    start = time.perf_counter()
    negatives = sample(student.model, student.tokenizer, [EXPLAIN + e.input for e in chosen], temperature=1.5,
                       config=config, device=device)
    sampling = len(chosen) / (time.perf_counter() - start)
    student.model.train()

    context = TrainContext(student, prep.task, chosen, prep.positives, prep.teacher_negatives, config, device, 1)
    discriminator = catalog.discriminators.get("encoder-maxpool").session(context, config["discriminator"])
    start = time.perf_counter()
    with torch.no_grad():
        discriminator.scores([e.input for e in chosen] * 6, [r.text for e in chosen for r in prep.positives[e.id]]
                             + negatives)
    scoring = 6 * len(chosen) / (time.perf_counter() - start)

    optimizer = torch.optim.AdamW(student.model.parameters(), lr=1e-5)
    generator = torch.Generator().manual_seed(0)
    results = {}
    one_each = {e.id: prep.positives[e.id][:1] for e in chosen}
    for name, loss, params, positives, judge in (
        ("dss", catalog.losses.get("dss"), {"alpha": 0.5}, one_each, Judge()),
        ("qcrd", catalog.losses.get("qcrd-contrastive"), config["loss"], prep.positives,
         Judge(negatives=FixedNegatives(dict(zip([e.id for e in chosen], negatives))), discriminator=discriminator)),
    ):
        items = encode_examples(tokens, chosen, positives)
        fn = StepLoss(student.model, student.model, tokens, loss, params, judge, device, generator)
        times = time_steps(fn, items, params, optimizer, judge, args.warmup + args.steps)[args.warmup:]
        results[name] = {"median_step_s": statistics.median(times), "steps": len(times)}
    ratio = results["qcrd"]["median_step_s"] / results["dss"]["median_step_s"]
    report = {"student": args.student, "n_params": student.info.get("n_params"), "batch": len(chosen),
              "positives_per_example": 5, "negatives_per_example": 1, "threads": args.threads, **results,
              "qcrd_over_dss": ratio, "selfplay_sampling_rationales_per_s": sampling,
              "discriminator_scoring_pairs_per_s": scoring}
    print(f"| step | median s |\n|---|---|\n| dss | {results['dss']['median_step_s']:.3f} |\n"
          f"| qcrd | {results['qcrd']['median_step_s']:.3f} |\nqcrd/dss = {ratio:.2f} (goal <= 2.0); "
          f"self-play sampling {sampling:.1f} rationales/s; judge scoring {scoring:.1f} pairs/s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
