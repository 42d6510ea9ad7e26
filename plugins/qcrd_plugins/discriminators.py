"""Built-in discriminators."""

from __future__ import annotations

from typing import Any

from qcrd_bench.components import Discriminator, Example
from qcrd_bench.hookspecs import hookimpl


class Constant(Discriminator):
    name = "constant"
    description = "every rationale scores 1 (no quality judge)"

    def scores(self, examples: list[Example], rationales: list[list[str]], params: dict[str, Any]) -> list[list[float]]:
        return [[1.0] * len(group) for group in rationales]


@hookimpl
def register_discriminators(register):
    register(Constant())
