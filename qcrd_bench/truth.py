"""Ground-truth diagnostics, for tasks that can check a rationale against its question
(``Task.check_rationale``; the generated ``synth-arith``).

On such a task every component of a method can be measured against the truth: how many
of the teacher's samples are right, how precise the positive filter is, how often the
negatives are really wrong, how well the judge tells right from wrong, and how often the
student's own rationales are right.  Labels are computed from the rationale's text by the
task's checker, never carried with the rationale, so nothing here can reach training.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

from .components import Example, Rationale, Task

VALID = "valid"


def has_checker(task: Task) -> bool:
    return callable(getattr(task, "check_rationale", None))


def checker(task: Task, params: dict[str, Any]) -> Callable[[Example, str], str] | None:
    """``check(example, text) -> label`` for ``task`` with these task parameters, or None.

    Labels are remembered per (example, text): a teacher repeats itself (K identical samples
    at one phrasing) and its rationales come back every epoch, and the checker is pure."""
    if not has_checker(task):
        return None
    labels: dict[tuple[str, str], str] = {}

    def check(example: Example, text: str) -> str:
        key = (example.id, text)
        if key not in labels:
            labels[key] = task.check_rationale(example, text, params)
        return labels[key]

    return check


def shares(labels: list[str], prefix: str) -> dict[str, float]:
    """``{prefix/<label>: share}`` of each label met."""
    counts = Counter(labels)
    return {f"{prefix}/{label}": n / len(labels) for label, n in sorted(counts.items())} if labels else {}


def invalid_share(labels: list[str]) -> float | None:
    return sum(label != VALID for label in labels) / len(labels) if labels else None


def teacher_truth(check: Callable[[Example, str], str], train: list[Example],
                  rationales: dict[str, list[Rationale]], positives: dict[str, list[Rationale]] | None = None,
                  negatives: dict[str, list[Rationale]] | None = None) -> dict[str, float]:
    """The teacher's samples and the positive filter against the truth:
    ``teacher/valid_frac`` and ``teacher/label/<label>`` over every sample of the training
    questions; with ``positives``, ``filter/precision`` (kept positives that are valid) and
    ``filter/recall`` (valid samples kept as positives); with ``negatives``,
    ``negatives/teacher_invalid_frac`` (teacher negatives that are not valid)."""
    samples, kept, teacher_negative = [], [], []
    for example in train:
        own = rationales.get(example.id, [])
        labels = [check(example, r.text) for r in own]
        samples += labels
        kept_ids = {id(r) for r in (positives or {}).get(example.id, [])}  # a filter returns the teacher's objects
        kept += [label for r, label in zip(own, labels) if id(r) in kept_ids]
        teacher_negative += [check(example, r.text) for r in (negatives or {}).get(example.id, [])]
    if not samples:
        return {}
    metrics = {"teacher/valid_frac": 1 - invalid_share(samples), **shares(samples, "teacher/label")}
    valid_kept, valid_all = kept.count(VALID), samples.count(VALID)
    if positives is not None and kept:
        metrics["filter/precision"] = valid_kept / len(kept)
    if positives is not None and valid_all:
        metrics["filter/recall"] = valid_kept / valid_all
    if teacher_negative:
        metrics["negatives/teacher_invalid_frac"] = invalid_share(teacher_negative)
    return metrics


def rationale_metrics(task: Task, examples: list[Example], texts: list[str],
                      check: Callable[[Example, str], str] | None, prefix: str = "test") -> dict[str, float]:
    """The student's own rationales: ``<prefix>/rationale_answer_accuracy`` (the answer its
    rationale reaches, ``Task.rationale_answer``) and, with a checker,
    ``<prefix>/rationale_valid`` and ``<prefix>/rationale_label/<label>``."""
    if not examples:
        return {}
    correct = sum(task.answers_match(task.rationale_answer(text), e.answer) for e, text in zip(examples, texts))
    metrics = {f"{prefix}/rationale_answer_accuracy": correct / len(examples)}
    if check is not None:
        labels = [check(e, text) for e, text in zip(examples, texts)]
        metrics[f"{prefix}/rationale_valid"] = labels.count(VALID) / len(labels)
        metrics.update(shares(labels, f"{prefix}/rationale_label"))
    return metrics


def auroc(scores: list[float], valid: list[bool]) -> float | None:
    """Area under the ROC curve of ``scores`` for telling valid from not valid (None when
    one of the two is missing)."""
    if len(set(valid)) < 2:
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(valid, scores))
