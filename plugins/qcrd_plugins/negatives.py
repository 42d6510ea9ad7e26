"""Built-in negative generators."""

from __future__ import annotations

from typing import Any

from qcrd_bench.components import Example, NegativeGenerator
from qcrd_bench.hookspecs import hookimpl


class NoNegatives(NegativeGenerator):
    name = "none"
    description = "no extra negatives"

    def negatives(self, examples: list[Example], context: Any, params: dict[str, Any]) -> list[list[str]]:
        return [[] for _ in examples]


@hookimpl
def register_negative_generators(register):
    register(NoNegatives())
