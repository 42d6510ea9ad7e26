"""The pieces of the performance harness; ``run_all.py`` runs them in one process.

Every piece takes what it needs (a prepared setup, a step count) and returns a flat
dict of numbers, so a test can run each one on ``t5-tiny`` with a single step.
"""

from __future__ import annotations

import contextlib
import copy
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from qcrd_bench.components import EXPLAIN, PREDICT, TrainContext
from qcrd_bench.config import resolve
from qcrd_bench.evaluation import generate
from qcrd_bench.plugins import load_catalog
from qcrd_bench.runner import build_student, prepare
from qcrd_bench.selfplay import sample
from qcrd_bench.students import autocast
from qcrd_bench.training import Judge, StepLoss, Tokens, encode_examples, train

MAX_INPUT_LENGTH, MAX_TARGET_LENGTH = 128, 64  # the smoke and cpu presets' lengths
CPU = torch.device("cpu")

# "wall": elapsed time, the figure that matters on a machine of one's own.  "cpu": CPU time
# of this process (of the child, for subprocesses), which a process sharing its core with
# others does not accrue while it waits; at one thread it is what wall time would be alone.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = {"name": "wall", "fn": time.perf_counter}


def set_clock(name: str) -> None:
    _clock.update(name=name, fn=CLOCKS[name])


def clock_name() -> str:
    return _clock["name"]


def now() -> float:
    return _clock["fn"]()


# ---------------------------------------------------------------- setup


@dataclass
class Setup:
    """One method's resolved config, data and a freshly built student."""

    catalog: Any
    config: dict
    prep: Any
    student: Any
    tokens: Tokens
    loss: Any


def overrides(student: str, batch: int, threads: int, **extra) -> dict[str, Any]:
    cli = {"student.name": student, "train.batch_size": batch, "train.threads": threads,
           "train.max_input_length": MAX_INPUT_LENGTH, "train.max_target_length": MAX_TARGET_LENGTH}
    if student == "t5-tiny":
        cli["student.vocab_size"] = 2048
    cli.update(extra)
    return cli


def make_setup(method: str, student: str, batch: int, threads: int, catalog=None, **extra) -> Setup:
    """resolve -> prepare -> build_student on SVAMP, from the smoke preset."""
    catalog = catalog or load_catalog()
    config = resolve(catalog, method, "svamp", "smoke", None, overrides(student, batch, threads, **extra))
    prep = prepare(catalog, config)
    loss = prep.components["loss"]
    torch.manual_seed(config["seed"])
    built = build_student(catalog, config, prep.data, prep.teacher_rationales, prep.targets, loss.predict_prefix)
    tokens = Tokens(built.tokenizer, config, getattr(built.model.config, "decoder_start_token_id", None))
    return Setup(catalog, config, prep, built, tokens, loss)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def machine(threads: int) -> dict[str, Any]:
    import transformers

    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {"cpu_count": os.cpu_count(), "affinity": affinity, "threads": threads, "torch": torch.__version__,
            "transformers": transformers.__version__, "python": platform.python_version(),
            "processor": platform.processor() or platform.machine()}


# ---------------------------------------------------------------- 1. dss: ours vs Seq2SeqTrainer


def dss_pool(setup: Setup, size: int):
    """The first ``size`` training questions that have a rationale and a label-side target."""
    prep = setup.prep
    targets = prep.targets or {}
    pool = [e for e in prep.data.train if prep.positives.get(e.id) and (not targets or e.id in targets)]
    if len(pool) < size:
        raise SystemExit(f"only {len(pool)} SVAMP questions with rationales; need {size} (lower --batch or --steps)")
    return pool[:size]


def dss_training(setup: Setup, steps: int) -> dict[str, Any]:
    """Examples/s of ``train`` (ours) and of the reference Seq2SeqTrainer, each for
    1 warm-up + ``steps`` optimizer steps from the same initial weights on the same
    examples (one pass over ``batch × (steps + 1)`` questions, each in its own order)."""
    from reference_dss import tokenise, train_reference

    cfg, prep, student = setup.config, setup.prep, setup.student
    batch, total = cfg["train"]["batch_size"], steps + 1
    pool = dss_pool(setup, batch * total)
    reference_model = copy.deepcopy(student.model)  # before ours trains student.model in place
    initial_state = {k: v.detach().clone() for k, v in student.model.state_dict().items()}

    # Ours: the real train(), logging every step; the clock is read at each step's log call.
    start = now()
    encoded = encode_examples(setup.tokens, pool, prep.positives, prep.targets, setup.loss.predict_prefix)
    ours_tokenise = now() - start
    marks: list[float] = []

    def log(metrics: dict[str, float], step: int) -> None:
        if "train/examples_per_s" in metrics:  # once per step: log_every is 1
            marks.append(now())

    run_cfg = copy.deepcopy(cfg)
    run_cfg["train"].update(steps=total, log_every=1, eval_every=total + 1, warmup_steps=0)
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):  # train()'s progress bar
        train(student, prep.task, setup.tokens, encoded, [], setup.loss, cfg["loss"], run_cfg, log)
    ours = [b - a for a, b in zip(marks, marks[1:])]  # steps 2 .. total: step 1 is the warm-up

    # Reference: Seq2SeqTrainer, datasets.map tokenisation, a pandas-splitting collator.
    targets = prep.targets or {}
    dataset, ref_tokenise = tokenise(
        student.tokenizer, [e.input for e in pool], [targets.get(e.id, e.label) for e in pool],
        [prep.positives[e.id][0].text for e in pool], cfg["train"]["max_input_length"],
        cfg["train"]["max_target_length"], clock=now)
    reference = train_reference(reference_model, student.tokenizer, dataset, steps=total, batch_size=batch,
                                lr=cfg["train"]["lr"], alpha=cfg["loss"]["alpha"], seed=cfg["seed"],
                                max_grad_norm=cfg["train"]["max_grad_norm"], clock=now)[1:]
    grouped = _ours_grouped(setup, encoded, initial_state, run_cfg, total)
    ours_eps = batch * len(ours) / sum(ours)
    ref_eps = batch * len(reference) / sum(reference)
    grouped_eps = batch * len(grouped) / sum(grouped)
    return {"steps": len(ours), "batch": batch,
            "ours_examples_per_s": ours_eps, "reference_examples_per_s": ref_eps,
            "ours_over_reference": ours_eps / ref_eps,
            "ours_grouped_examples_per_s": grouped_eps, "ours_grouped_over_reference": grouped_eps / ref_eps,
            "ours_step_s_median": statistics.median(ours), "reference_step_s_median": statistics.median(reference),
            "ours_tokenise_s": ours_tokenise, "reference_tokenise_s": ref_tokenise,
            **padding(encoded, batch, cfg["seed"]),
            "_reference_model": reference_model, "_dataset": dataset, "_encoded": encoded,
            "_initial_state": initial_state}


def _ours_grouped(setup: Setup, encoded, initial_state, run_cfg, total: int) -> list[float]:
    """Step times of ``train`` again from the same weights, with train.group_by_length=8
    (an option, off by default: the batches hold the same examples in another grouping)."""
    setup.student.model.load_state_dict(initial_state)
    cfg = copy.deepcopy(run_cfg)
    cfg["train"]["group_by_length"] = 8
    marks: list[float] = []

    def log(metrics: dict[str, float], step: int) -> None:
        if "train/examples_per_s" in metrics:
            marks.append(now())

    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        train(setup.student, setup.prep.task, setup.tokens, encoded, [], setup.loss, cfg["loss"], cfg, log)
    return [b - a for a, b in zip(marks, marks[1:])]


def padding(encoded, batch: int, seed: int, group: int = 8) -> dict[str, float]:
    """Share of the encoder and decoder positions of a dss step that are padding, over
    batches of a seeded shuffle of the pool (what both trainers compute and throw away),
    and the same share had each run of ``group`` batches been sorted by length first
    (an estimate of what length-grouped batching would leave; neither trainer does it)."""
    order = torch.randperm(len(encoded), generator=torch.Generator().manual_seed(seed)).tolist()

    def length(i: int) -> int:
        it = encoded[i]
        return len(it.explain) + len(it.positives[0])

    grouped = []
    for start in range(0, len(order), batch * group):
        grouped += sorted(order[start:start + batch * group], key=length)
    out = {}
    for name, sequence in (("", order), ("_grouped", grouped)):
        real = {"encoder": 0, "decoder": 0}
        padded = {"encoder": 0, "decoder": 0}
        for start in range(0, len(sequence), batch):
            items = [encoded[i] for i in sequence[start:start + batch]]
            for side, seqs in (("encoder", [it.predict for it in items]), ("encoder", [it.explain for it in items]),
                               ("decoder", [it.label for it in items]),
                               ("decoder", [it.positives[0] for it in items])):
                real[side] += sum(map(len, seqs))
                padded[side] += len(seqs) * max(map(len, seqs))
        out.update({f"padding_share_{side}{name}": 1 - real[side] / padded[side] for side in real})
    return out


# ---------------------------------------------------------------- 2. one qcrd step vs one dss step


class FixedNegatives:
    """A negative generator that hands out negatives sampled beforehand."""

    def __init__(self, texts: dict[str, str]):
        self.texts = texts

    def negatives(self, examples, step):
        return [[self.texts[e.id]] for e in examples]

    def samples(self):
        return []


def time_steps(fn, items, optimizer, judge: Judge, steps: int, config: dict) -> list[float]:
    """Step times under the config's train.mixed_precision, as the trainer runs them."""
    times = []
    for step in range(1, steps + 1):
        start = now()
        with autocast(config, CPU):
            out = fn(items, step)
        out.total.backward()
        optimizer.step()
        optimizer.zero_grad()
        if judge.discriminator is not None:
            judge.discriminator.step()
        times.append(now() - start)
    return times


def qcrd_setup(student: str, batch: int, threads: int, catalog=None, mixed_precision: str = "no") -> Setup:
    return make_setup("qcrd", student, batch, threads, catalog, **{"discriminator.pretrain_steps": 0,
                                                                    "train.mixed_precision": mixed_precision})


def qcrd_vs_dss(setup: Setup, steps: int, warmup: int = 1) -> dict[str, Any]:
    """Median step time of ``qcrd`` (K = 5 MCC-KD positives and 1 self-play negative per
    question, scored by the encoder-maxpool judge, which L_D updates in the same step)
    and of ``dss`` (the first of those positives), same student and batch.  Also
    self-play sampling (rationales/s) and judge scoring (pairs/s, no gradients)."""
    catalog, config, prep, student = setup.catalog, setup.config, setup.prep, setup.student
    batch = config["train"]["batch_size"]
    chosen = [e for e in prep.data.train if len(prep.positives.get(e.id, [])) == 5][:batch]

    start = now()
    with autocast(config, CPU):
        negatives = sample(student.model, student.tokenizer, [EXPLAIN + e.input for e in chosen], temperature=1.5,
                           config=config, device=CPU)
    sampling_s = now() - start
    student.model.train()

    context = TrainContext(student, prep.task, chosen, prep.positives, prep.teacher_negatives, config, CPU, 1)
    discriminator = catalog.discriminators.get("encoder-maxpool").session(context, config["discriminator"])
    pair_inputs = [e.input for e in chosen for _ in prep.positives[e.id]] + [e.input for e in chosen]
    pair_texts = [r.text for e in chosen for r in prep.positives[e.id]] + negatives
    start = now()
    with torch.no_grad():
        discriminator.scores(pair_inputs, pair_texts)
    scoring_s = now() - start
    # The same pairs with gradients, as a qcrd step scores them for L_D: forward + backward.
    start = now()
    discriminator.scores(pair_inputs, pair_texts).sum().backward()
    judge_train_s = now() - start
    discriminator.optimizer.zero_grad(set_to_none=True)

    optimizer = torch.optim.AdamW(student.model.parameters(), lr=1e-5)
    generator = torch.Generator().manual_seed(0)
    results = {}
    one_each = {e.id: prep.positives[e.id][:1] for e in chosen}
    for name, loss, params, positives, judge in (
        ("dss", catalog.losses.get("dss"), {"alpha": 0.5}, one_each, Judge()),
        ("qcrd", catalog.losses.get("qcrd-contrastive"), config["loss"], prep.positives,
         Judge(negatives=FixedNegatives(dict(zip([e.id for e in chosen], negatives))), discriminator=discriminator)),
    ):
        items = encode_examples(setup.tokens, chosen, positives)
        fn = StepLoss(student.model, student.model, setup.tokens, loss, params, judge, CPU, generator)
        results[name] = statistics.median(time_steps(fn, items, optimizer, judge, warmup + steps, config)[warmup:])
    return {"batch": len(chosen), "positives_per_example": 5, "negatives_per_example": 1, "steps": steps,
            "dss_step_s_median": results["dss"], "qcrd_step_s_median": results["qcrd"],
            "qcrd_over_dss": results["qcrd"] / results["dss"],
            "selfplay_rationales_per_s": len(chosen) / sampling_s,
            "discriminator_pairs_per_s": len(pair_texts) / scoring_s,
            "discriminator_train_pairs_per_s": len(pair_texts) / judge_train_s,
            "discriminator_pairs": len(pair_texts)}


# ---------------------------------------------------------------- 3. evaluation decoding


@torch.no_grad()
def per_example_generate(model, tokenizer, texts: list[str], *, max_input_length: int, max_new_tokens: int):
    """``model.generate`` called once per example, as a naive evaluation loop does ->
    (outputs, decoding steps of each: generated tokens, the end-of-sequence one included)."""
    was_training = model.training
    model.eval()
    outputs, steps = [], []
    for text in texts:
        enc = tokenizer([text], return_tensors="pt", truncation=True, max_length=max_input_length)
        enc.pop("token_type_ids", None)
        ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
        outputs.append(tokenizer.decode(ids[0], skip_special_tokens=True).strip())
        steps.append(ids.shape[1] - 1)  # less the decoder start token
    model.train(was_training)
    return outputs, steps


def _decode_both(model, tokenizer, texts: list[str], max_in: int, max_new_tokens: int, batch_size: int):
    generate(model, tokenizer, texts[:2], batch_size=batch_size, max_input_length=max_in,
             max_new_tokens=max_new_tokens, device=CPU)  # warm-up
    start = now()
    batched = generate(model, tokenizer, texts, batch_size=batch_size, max_input_length=max_in,
                       max_new_tokens=max_new_tokens, device=CPU)
    batched_s = now() - start
    start = now()
    single, steps = per_example_generate(model, tokenizer, texts, max_input_length=max_in,
                                         max_new_tokens=max_new_tokens)
    single_s = now() - start
    return {"batched_examples_per_s": len(texts) / batched_s, "per_example_examples_per_s": len(texts) / single_s,
            "batched_over_per_example": single_s / batched_s,
            "outputs_identical": sum(a == b for a, b in zip(batched, single)) / len(texts),
            "mean_output_tokens": statistics.mean(steps), "max_output_tokens": max(steps)}


def decode(setup: Setup, n: int, max_new_tokens: int, batch_size: int = 64,
           fresh_state: dict[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """Greedy decoding of ``predict: x`` for ``n`` test questions: ``evaluation.generate``
    (length-sorted batches of ``batch_size``) against ``model.generate`` per example, by
    the student as it is (after the dss comparison's steps: short outputs) and, with
    ``fresh_state``, by the untrained student (``fresh_*``: every output runs to
    ``max_new_tokens``).  Also the mean token length of the gold labels, which is about
    what a trained student emits."""
    model, tokenizer = setup.student.model, setup.student.tokenizer
    examples = setup.prep.data.test[:n]
    texts = [PREDICT + e.input for e in examples]
    max_in = setup.config["train"]["max_input_length"]
    out: dict[str, Any] = {"n": len(texts), "max_new_tokens": max_new_tokens, "batch_size": batch_size,
                           "gold_label_mean_tokens": statistics.mean(map(len, setup.tokens.targets(
                               [e.label for e in examples])))}
    out.update(_decode_both(model, tokenizer, texts, max_in, max_new_tokens, batch_size))
    if fresh_state is not None:
        fresh = copy.deepcopy(model)
        fresh.load_state_dict(fresh_state)
        out.update({f"fresh_{k}": v for k, v in
                    _decode_both(fresh, tokenizer, texts, max_in, max_new_tokens, batch_size).items()})
    return out


# ---------------------------------------------------------------- 5. CLI start-up and a smoke run


def cli_executable() -> list[str]:
    local = Path(sys.executable).with_name("qcrd-bench")
    if local.exists():
        return [str(local)]
    found = shutil.which("qcrd-bench")
    return [found] if found else [sys.executable, "-m", "qcrd_bench.cli"]


def _timed(cmd: list[str], cwd: str, env: dict[str, str]) -> dict[str, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MiB) of one subprocess run;
    fails loudly.  /usr/bin/time measures the child alone; without it, getrusage of the
    children (whose peak RSS is the largest child's so far)."""
    import resource

    time_bin = "/usr/bin/time" if Path("/usr/bin/time").exists() else None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.NamedTemporaryFile("r", suffix=".time") as record:
        full = [time_bin, "-f", "%e %U %S %M", "-o", record.name, *cmd] if time_bin else cmd
        start = time.perf_counter()
        proc = subprocess.run(full, cwd=cwd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{shlex.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        fields = record.read().split() if time_bin else []
    if len(fields) >= 4:
        return {"wall_s": float(fields[0]), "cpu_s": float(fields[1]) + float(fields[2]),
                "peak_rss_mb": int(fields[3]) / 1024}
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall_s": wall, "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "peak_rss_mb": after.ru_maxrss / 1024}


def cli(threads: int, repeats: int = 3, smoke: bool = True, smoke_extra: str = "") -> dict[str, Any]:
    """Median time of ``qcrd-bench --help`` and ``qcrd-bench list`` over ``repeats`` runs,
    and the time and peak RSS of a dss smoke run on SVAMP (temp tracking store).  Each
    ``*_s`` is on the harness's clock (wall, or the child's CPU time); wall is kept too."""
    exe = cli_executable()
    key = "wall_s" if clock_name() == "wall" else "cpu_s"
    out: dict[str, Any] = {"repeats": repeats, "clock": clock_name()}
    with tempfile.TemporaryDirectory() as work:
        for name, args in (("help", ["--help"]), ("list", ["list"])):
            runs = [_timed(exe + args, work, dict(os.environ)) for _ in range(repeats)]
            out[f"{name}_s_median"] = statistics.median(r[key] for r in runs)
            out[f"{name}_wall_s_median"] = statistics.median(r["wall_s"] for r in runs)
        if smoke:
            args = ["run", "-m", "dss", "-t", "svamp", "--preset", "smoke", "--set", f"train.threads={threads}",
                    *shlex.split(smoke_extra)]
            run = _timed(exe + args + ["--tracking-uri", f"sqlite:///{work}/mlflow.db"], work, dict(os.environ))
            out.update(smoke_s=run[key], smoke_wall_s=run["wall_s"], smoke_cpu_s=run["cpu_s"],
                       smoke_peak_rss_mb=run["peak_rss_mb"], smoke_command=shlex.join(["qcrd-bench", *args]))
    return out


# ---------------------------------------------------------------- 6. compute efficiency


def count_flops(fn) -> int:
    """FLOPs of forward + backward of the loss ``fn()`` returns (the caller clears the grads)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn().backward()
    return counter.get_total_flops()


def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of the best of ``repeats`` fp32 ``torch.mm`` of two size × size matrices."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = now()
        torch.mm(a, b)
        best = min(best, now() - start)
    return 2 * size ** 3 / best


def efficiency(setup: Setup, dss: dict[str, Any], matmul_size: int = 2048) -> dict[str, Any]:
    """FLOPs of one dss training step (ours, and the reference's two-pass step on the same
    questions), achieved FLOP/s at each one's median step time, and the share of the
    measured fp32 matmul peak at the same thread count."""
    from reference_dss import flop_batch

    model = setup.student.model
    batch = setup.config["train"]["batch_size"]
    items = dss["_encoded"][:batch]
    fn = StepLoss(model, model, setup.tokens, setup.loss, setup.config["loss"], Judge(), CPU,
                  torch.Generator().manual_seed(0))
    model.train()
    ours_flops = count_flops(lambda: fn(items, 1).total)
    model.zero_grad(set_to_none=True)
    reference_model = dss["_reference_model"]
    reference_model.train()
    ref_flops = count_flops(flop_batch(reference_model, setup.student.tokenizer, dss["_dataset"],
                                       list(range(batch)), setup.config["loss"]["alpha"]))
    reference_model.zero_grad(set_to_none=True)
    peak = matmul_peak(matmul_size)
    ours_rate = ours_flops / dss["ours_step_s_median"]
    ref_rate = ref_flops / dss["reference_step_s_median"]
    return {"ours_flops_per_step": ours_flops, "reference_flops_per_step": ref_flops,
            "ours_flop_per_s": ours_rate, "reference_flop_per_s": ref_rate,
            "matmul_peak_flop_per_s": peak, "matmul_size": matmul_size,
            "ours_efficiency_pct": 100 * ours_rate / peak, "reference_efficiency_pct": 100 * ref_rate / peak}
