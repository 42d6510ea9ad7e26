"""Batched greedy decoding and answer scoring."""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch

from .components import EXPLAIN, PREDICT, Example, Loss, Task

__all__ = ["EXPLAIN", "PREDICT", "evaluate", "generate", "score"]

_DEFAULT_READING = Loss()  # the base hooks: "predict: " input, the whole output is the answer


@torch.no_grad()
def generate(model, tokenizer, texts: list[str], *, batch_size: int, max_input_length: int,
             max_new_tokens: int, device, progress: Callable[[Iterable], Iterable] | None = None) -> list[str]:
    """Greedy outputs for ``texts``, in order.  Inputs are sorted by length so each
    batch pads little; the KV cache is used by ``generate``.  ``progress`` wraps the
    batches (a bar: ``console.progress``)."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    outputs: list[str] = [""] * len(texts)
    starts = range(0, len(order), batch_size)
    for start in progress(starts) if progress else starts:
        chunk = order[start:start + batch_size]
        enc = tokenizer([texts[i] for i in chunk], return_tensors="pt", padding=True,
                        truncation=True, max_length=max_input_length).to(device)
        enc.pop("token_type_ids", None)
        ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
        for i, text in zip(chunk, tokenizer.batch_decode(ids, skip_special_tokens=True)):
            outputs[i] = text.strip()
    model.train(was_training)
    return outputs


def score(task: Task, examples: list[Example], outputs: list[str],
          answer_text: Callable[[str], str | None] | None = None) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Accuracy (strict extractor: the headline), flexible accuracy and strict parse
    rate of ``outputs`` against ``examples``, and one row per example.  The strict
    extractor reads ``answer_text(output)`` (default: the output; None: unparsed), the
    flexible one the whole output."""
    rows, correct, correct_flexible, parsed = [], 0, 0, 0
    for example, output in zip(examples, outputs):
        text = answer_text(output) if answer_text is not None else output
        answer = None if text is None else task.extract_answer(text, example)
        lenient = task.extract_answer(output, example, flexible=True)
        ok = task.answers_match(answer, example.answer)
        ok_flexible = task.answers_match(lenient, example.answer)
        parsed += answer is not None
        correct += ok
        correct_flexible += ok_flexible
        rows.append({"id": example.id, "input": example.input, "gold": example.label,
                     "prediction": output, "parsed_answer": None if answer is None else str(answer),
                     "correct": bool(ok),
                     "parsed_answer_flexible": None if lenient is None else str(lenient),
                     "correct_flexible": bool(ok_flexible)})
    n = max(len(examples), 1)
    return {"accuracy": correct / n, "accuracy_flexible": correct_flexible / n, "parse_rate": parsed / n}, rows


def evaluate(model, tokenizer, task: Task, examples: list[Example], cfg: dict, device, loss: Loss | None = None,
             progress: Callable[[Iterable], Iterable] | None = None):
    """Decode the label-side input (``loss.predict_prefix + x``) of every example and score
    the answer ``loss.answer_text`` reads in it -> (metrics, rows).  Default: ``predict: x``."""
    reading = loss if loss is not None else _DEFAULT_READING
    outputs = generate(model, tokenizer, [reading.predict_prefix + e.input for e in examples],
                       batch_size=cfg["eval"]["batch_size"], max_input_length=cfg["train"]["max_input_length"],
                       max_new_tokens=reading.max_new_tokens(cfg), device=device, progress=progress)
    return score(task, examples, outputs, reading.answer_text)
