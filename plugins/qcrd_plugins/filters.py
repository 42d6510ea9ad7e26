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


@hookimpl
def register_positive_filters(register):
    register(First())
    register(All())
