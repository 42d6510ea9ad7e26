"""A quick, untracked training loop for finding a level of synth-arith a student can learn.

    python benchmarks/calibration/explore.py method=dss names=2 people_max=2 events=1 steps=1500

Trains one config-built T5 (word tokenizer, no dropout) with the project's own StepLoss on a
generated synth-arith split and prints, every ``every`` steps, the label head's validation
accuracy (the first decoded token against the one-token label) and, for dss, what the
student's own rationales reach on 200 validation questions (``rationale_answer`` and the
checker's ``valid`` share).  No MLflow, no test set: it is for the exploration recorded in
benchmarks/suites/synth-calibration.yaml; the figures a report quotes come from `qcrd-bench run`.

Options (KEY=VALUE): method (finetune | dss), size (a T5_SIZES name), lr, steps, bs, warmup,
every, threads, schedule (train.lr_schedule: linear | constant | wsd, decaying over the last
``decay`` fraction of the steps, default 0.2), wd (AdamW's weight decay, default 0 as in a run; the
explorations recorded before 8a59bf4 ran at torch's 0.01), seed (initialisation and data order),
shape (JSON: T5Config fields over size's), pdyn (dss on the first of the synthetic teacher's samples
at this p_dynamic instead of the gold rationale), and any synth-arith task parameter (names, events,
kinds, ...).
"""

from __future__ import annotations

import json
import sys
import time

import torch

from qcrd_bench.evaluation import generate
from qcrd_bench.plugins import load_catalog
from qcrd_bench.students import T5_SIZES, t5_from_config
from qcrd_bench.training import Judge, StepLoss, Tokens, batches, encode_examples, lr_scheduler, pad
from qcrd_bench.truth import rationale_metrics
from qcrd_plugins.losses import Dss, LabelCE


def main() -> None:
    options = dict(arg.split("=", 1) for arg in sys.argv[1:])
    method = options.pop("method", "finetune")
    size, lr = options.pop("size", "t5-tiny"), float(options.pop("lr", "2e-3"))
    steps, batch_size = int(options.pop("steps", "1500")), int(options.pop("bs", "32"))
    warmup, every = int(options.pop("warmup", "100")), int(options.pop("every", "100"))
    p_dynamic = float(options.pop("pdyn", "0"))
    schedule_name, decay = options.pop("schedule", "linear"), float(options.pop("decay", "0.2"))
    seed = int(options.pop("seed", "0"))
    weight_decay = float(options.pop("wd", "0"))  # train.weight_decay's default (torch's AdamW would use 0.01)
    if "shape" in options:  # a T5 shape of one's own, e.g. shape='{"d_model": 64, "num_heads": 8, ...}'
        T5_SIZES["custom"] = {**T5_SIZES[size], **json.loads(options.pop("shape"))}
        size = "custom"
    torch.set_num_threads(int(options.pop("threads", "1")))
    torch.manual_seed(seed)

    catalog = load_catalog()
    task = catalog.tasks.get("synth-arith")
    params = {**task.defaults, "val_size": 500, "test_size": 10,
              **{k: type(task.defaults[k])(v) for k, v in options.items()}}
    data = task.load(params)
    positives = {}
    if method == "dss" and p_dynamic:
        teacher = catalog.teachers.get("synthetic")
        out = teacher.rationales(task, data, {**teacher.defaults, "p_dynamic": p_dynamic, "seed": 0})
        positives = {k: v[:1] for k, v in out.rationales.items()}
    elif method == "dss":
        positives = {e.id: [task.gold_rationale(e, params)] for e in data.train}
    texts = (["predict: " + e.input for e in data.train[:5000]] + ["explain: x"] + [e.label for e in data.train[:5000]]
             + [r.text for e in data.train[:5000] for r in positives.get(e.id, [])])
    student = t5_from_config(size, texts, seed, tokenizer="word", dropout=0.0)
    config = {"train": {"max_input_length": 128, "max_target_length": 64, "mixed_precision": "no"}, "seed": 0}
    tokens = Tokens(student.tokenizer, config, 0)
    items, val = encode_examples(tokens, data.train, positives), encode_examples(tokens, data.val, {})
    loss, loss_params = (Dss(), {"alpha": 0.5}) if method == "dss" else (LabelCE(), {})
    step_fn = StepLoss(student.model, student.model, tokens, loss, loss_params, Judge(), torch.device("cpu"),
                       torch.Generator())
    optimizer = torch.optim.AdamW(student.model.parameters(), lr, weight_decay=weight_decay)
    schedule = lr_scheduler(optimizer, {"lr_schedule": schedule_name, "warmup_steps": warmup, "steps": steps,
                                        "lr_decay_fraction": decay})
    stream = batches(len(items), batch_size, torch.Generator().manual_seed(seed))

    def label_accuracy() -> float:
        student.model.eval()
        correct = 0
        with torch.no_grad():
            for start in range(0, len(val), 250):
                chunk = val[start:start + 250]
                ids, labels = pad([x.predict for x in chunk], 0), pad([x.label for x in chunk], -100)
                logits = student.model(input_ids=ids, attention_mask=(ids != 0).long(),
                                       decoder_input_ids=student.model.prepare_decoder_input_ids_from_labels(
                                           labels=labels)).logits
                correct += (logits[:, 0].argmax(-1) == labels[:, 0]).sum().item()
        student.model.train()
        return correct / len(val)

    def rationale_reading(n: int = 200) -> str:
        examples = data.val[:n]
        outputs = generate(student.model, student.tokenizer, ["explain: " + e.input for e in examples], batch_size=100,
                           max_input_length=128, max_new_tokens=64, device="cpu")
        m = rationale_metrics(task, examples, outputs, lambda e, t: task.check_rationale(e, t, params), prefix="val")
        return f" rationale_answer {m['val/rationale_answer_accuracy']:.3f} valid {m['val/rationale_valid']:.3f}"

    print(f"params {sum(p.numel() for p in student.model.parameters())} train {len(items)}", flush=True)
    started, running = time.time(), 0.0
    student.model.train()
    for step in range(1, steps + 1):
        out = step_fn([items[i] for i in next(stream)], step)
        out.total.backward()
        torch.nn.utils.clip_grad_norm_(student.model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        running += out.terms["loss_pred"].item()
        if step % every == 0:
            extra = rationale_reading() if method == "dss" and step % (2 * every) == 0 else ""
            print(f"{step} loss_pred {running / every:.3f} val {label_accuracy():.3f} "
                  f"{time.time() - started:.0f}s{extra}", flush=True)
            running = 0.0


if __name__ == "__main__":
    main()
