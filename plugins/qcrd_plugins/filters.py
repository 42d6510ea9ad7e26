"""Built-in positive filters."""

from __future__ import annotations

from typing import Any

from qcrd_bench.components import Example, PositiveFilter, Rationale, Task
from qcrd_bench.hookspecs import hookimpl


class First(PositiveFilter):
    name = "first"
    description = "the first non-empty rationale is the positive, whatever its answer (as DSS uses PaLM's)"

    def split(self, example: Example, rationales: list[Rationale], task: Task, params: dict[str, Any]):
        usable = [r for r in rationales if r.text.strip()]
        return usable[:1], []


class All(PositiveFilter):
    name = "all"
    description = "every non-empty rationale is a positive (DSS with several rationales per question)"

    def split(self, example: Example, rationales: list[Rationale], task: Task, params: dict[str, Any]):
        return [r for r in rationales if r.text.strip()], []


class SelfConsistency(PositiveFilter):
    """Majority vote over the parsed answers of a question's samples (QCRD's ED).

    Majority -> positives; minority and unparseable -> teacher negatives.  A tie goes
    to the gold answer when it is among the tied answers, else to the answer seen
    first.  With ``require_gold`` the positives are kept only when the majority
    answer equals gold (otherwise the question has no positives).
    """

    name = "self-consistency"
    description = "majority vote over the teacher samples' answers: majority positive, the rest teacher negatives"
    defaults = {"require_gold": False}

    def split(self, example: Example, rationales: list[Rationale], task: Task, params: dict[str, Any]):
        clusters: list[list[Rationale]] = []  # samples grouped by equal answers, in first-seen order
        unparseable = []
        for rationale in rationales:
            if not rationale.text.strip():
                continue
            if rationale.answer is None:
                unparseable.append(rationale)
                continue
            home = next((c for c in clusters if task.answers_match(rationale.answer, c[0].answer)), None)
            if home is None:
                clusters.append([rationale])
            else:
                home.append(rationale)
        if not clusters:
            return [], unparseable
        top = max(len(c) for c in clusters)
        tied = [c for c in clusters if len(c) == top]
        majority = next((c for c in tied if task.answers_match(c[0].answer, example.answer)), tied[0])
        minority = [r for c in clusters if c is not majority for r in c] + unparseable
        if params["require_gold"] and not task.answers_match(majority[0].answer, example.answer):
            return [], minority
        return majority, minority


@hookimpl
def register_positive_filters(register):
    register(First())
    register(All())
    register(SelfConsistency())
