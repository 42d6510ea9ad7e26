"""Built-in positive filters."""

from __future__ import annotations

from typing import Any

from qcrd_bench.components import Example, PositiveFilter, Rationale, Task
from qcrd_bench.hookspecs import hookimpl
from qcrd_bench.rationales import answer_clusters, majority


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
        clusters, unparseable = answer_clusters(task, [r for r in rationales if r.text.strip()])
        top = majority(task, example, clusters)
        if top is None:
            return [], unparseable
        minority = [r for c in clusters if c is not top for r in c] + unparseable
        if params["require_gold"] and not task.answers_match(top[0].answer, example.answer):
            return [], minority
        return top, minority


@hookimpl
def register_positive_filters(register):
    register(First())
    register(All())
    register(SelfConsistency())
