"""The training loop shared by every method, on accelerate.

Each example is tokenised once.  A step computes the per-sequence NLL of the label
(from ``predict: x``) and, when the loss uses them, of every positive rationale
(from ``explain: x``); the method's loss component turns those into a scalar.
Validation runs every ``train.eval_every`` steps; the best-validation weights are
kept so the test set is scored at the best step and at the final step.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from .components import Example, Loss, LossInputs, Rationale, Task
from .evaluation import EXPLAIN, PREDICT, evaluate
from .objectives import sequence_nll


@dataclass
class Encoded:
    """Token ids of one training example."""

    predict: list[int]
    label: list[int]
    explain: list[int]
    positives: list[list[int]]


@dataclass
class TrainResult:
    best_step: int
    best_val_accuracy: float | None
    best_state: dict[str, torch.Tensor] | None
    history: list[dict[str, float]] = field(default_factory=list)


def encode_examples(tokenizer, examples: list[Example], positives: dict[str, list[Rationale]],
                    cfg: dict, decoder_start_id: int | None) -> list[Encoded]:
    """Tokenise every input and target once (batched, in the tokenizer's Rust code)."""
    max_in, max_out = cfg["train"]["max_input_length"], cfg["train"]["max_target_length"]

    def ids(texts: list[str], max_length: int, target: bool = False) -> list[list[int]]:
        if not texts:
            return []
        out = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
        if target and decoder_start_id is not None:
            # A BERT-style tokenizer starts targets with [CLS], which is also the decoder's
            # start token: predicting it again would waste a step.
            out = [seq[1:] if seq and seq[0] == decoder_start_id else seq for seq in out]
        return out

    predict = ids([PREDICT + e.input for e in examples], max_in)
    explain = ids([EXPLAIN + e.input for e in examples], max_in)
    labels = ids([e.label for e in examples], max_out, target=True)
    flat = [r.text for e in examples for r in positives.get(e.id, [])]
    flat_ids = iter(ids(flat, max_out, target=True))
    return [Encoded(p, l, x, [next(flat_ids) for _ in positives.get(e.id, [])])
            for e, p, l, x in zip(examples, predict, labels, explain)]


def pad(seqs: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    return torch.tensor([s + [value] * (width - len(s)) for s in seqs], dtype=torch.long)


def nll(model, inputs: list[list[int]], targets: list[list[int]], pad_id: int, device) -> torch.Tensor:
    """Per-sequence token-mean NLL of ``targets`` given ``inputs`` -> [N]."""
    input_ids = pad(inputs, pad_id).to(device)
    labels = pad(targets, -100).to(device)
    out = model(input_ids=input_ids, attention_mask=(input_ids != pad_id).long(), labels=labels)
    return sequence_nll(out.logits, labels)


def batches(n: int, batch_size: int, generator: torch.Generator, shard: int = 0, shards: int = 1):
    """Endless seeded shuffles of range(n), cut into global batches of ``batch_size × shards``
    (the last of an epoch may be short); each process takes its own shard of each."""
    size = batch_size * shards
    while True:
        order = torch.randperm(n, generator=generator).tolist()
        for start in range(0, n, size):
            yield order[start:start + size][shard::shards]


def train(student, task: Task, train_set: list[Encoded], val: list[Example], loss: Loss,
          loss_params: dict[str, Any], cfg: dict, log: Callable[[dict[str, float], int], None]) -> TrainResult:
    tc = cfg["train"]
    accelerator = Accelerator(gradient_accumulation_steps=tc["grad_accum"], mixed_precision=tc["mixed_precision"])
    model, tokenizer = student.model, student.tokenizer
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc["lr"], weight_decay=tc["weight_decay"])
    scheduler = get_linear_schedule_with_warmup(optimizer, tc["warmup_steps"], tc["steps"])
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    device, pad_id = accelerator.device, tokenizer.pad_token_id

    generator = torch.Generator().manual_seed(cfg["seed"])
    stream = batches(len(train_set), tc["batch_size"], generator, accelerator.process_index,
                     accelerator.num_processes)
    val_subset = val[: cfg["eval"]["val_limit"]] if cfg["eval"]["val_limit"] else val
    result = TrainResult(best_step=0, best_val_accuracy=None, best_state=None)
    window: dict[str, float] = {}
    window_steps, window_examples, window_start = 0, 0, time.perf_counter()

    model.train()
    progress = tqdm(range(1, tc["steps"] + 1), desc=f"{cfg['method']}/{cfg['task']['name']}", unit="step",
                    disable=not accelerator.is_main_process)
    for step in progress:
        for _ in range(tc["grad_accum"]):
            items = [train_set[i] for i in next(stream)]
            with accelerator.accumulate(model):
                out = loss(_loss_inputs(model, items, loss.uses_rationales, pad_id, device), loss_params)
                accelerator.backward(out.total)
                if accelerator.sync_gradients and tc["max_grad_norm"] > 0:
                    accelerator.clip_grad_norm_(model.parameters(), tc["max_grad_norm"])
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            for name, value in {"loss": out.total, **out.terms}.items():
                window[name] = window.get(name, 0.0) + float(value.detach()) / tc["grad_accum"]
            window_examples += len(items)
        window_steps += 1

        if step % tc["log_every"] == 0 or step == tc["steps"]:
            seconds = time.perf_counter() - window_start
            metrics = {f"train/{k}": v / window_steps for k, v in window.items()}
            metrics["train/lr"] = scheduler.get_last_lr()[0]
            metrics["train/examples_per_s"] = window_examples / max(seconds, 1e-9)
            log(metrics, step)
            progress.set_postfix(loss=f"{metrics['train/loss']:.3f}")
            window, window_steps, window_examples, window_start = {}, 0, 0, time.perf_counter()

        if val_subset and (step % tc["eval_every"] == 0 or step == tc["steps"]):
            eval_start = time.perf_counter()
            metrics, _ = evaluate(accelerator.unwrap_model(model), tokenizer, task, val_subset, cfg, device)
            window_start += time.perf_counter() - eval_start  # throughput counts training only
            log({"val/accuracy": metrics["accuracy"], "val/parse_rate": metrics["parse_rate"]}, step)
            result.history.append({"step": step, **metrics})
            if result.best_val_accuracy is None or metrics["accuracy"] > result.best_val_accuracy:
                result.best_val_accuracy, result.best_step = metrics["accuracy"], step
                result.best_state = copy.deepcopy(
                    {k: v.detach().cpu() for k, v in accelerator.unwrap_model(model).state_dict().items()})
    progress.close()
    student.model = accelerator.unwrap_model(model)
    return result


def _loss_inputs(model, items: list[Encoded], with_rationales: bool, pad_id: int, device) -> LossInputs:
    label_nll = nll(model, [it.predict for it in items], [it.label for it in items], pad_id, device)
    if not with_rationales:
        return LossInputs(label_nll=label_nll)
    owners = [b for b, it in enumerate(items) for _ in it.positives]
    if not owners:
        empty = label_nll.new_zeros(0)
        return LossInputs(label_nll, empty, torch.zeros(0, dtype=torch.long, device=device), empty)
    pos_nll = nll(model, [items[b].explain for b in owners], [r for it in items for r in it.positives], pad_id, device)
    return LossInputs(label_nll=label_nll, pos_nll=pos_nll,
                      pos_owner=torch.tensor(owners, dtype=torch.long, device=device),
                      pos_score=torch.ones_like(pos_nll))
