"""Built-in negative generators (QCRD's NK: negative knowledge)."""

from __future__ import annotations

from typing import Any

from qcrd_bench.components import Example, NegativeGenerator, TrainContext
from qcrd_bench.errors import ConfigError
from qcrd_bench.hookspecs import hookimpl


class NoNegatives(NegativeGenerator):
    name = "none"
    description = "no negatives"

    def session(self, context: TrainContext, params: dict[str, Any]):
        return _Static(context, with_teacher=False)


class TeacherMinority(NegativeGenerator):
    name = "teacher-minority"
    description = "the teacher's minority and unparseable samples only (the 'SC only' ablation)"

    def session(self, context: TrainContext, params: dict[str, Any]):
        return _Static(context, with_teacher=True)


class _Static:
    def __init__(self, context: TrainContext, with_teacher: bool):
        self.context, self.with_teacher = context, with_teacher

    def negatives(self, examples: list[Example], step: int) -> list[list[str]]:
        from qcrd_bench.selfplay import teacher_negatives

        return teacher_negatives(self.context, examples) if self.with_teacher else [[] for _ in examples]

    def samples(self) -> list[dict[str, Any]]:
        return []


class StudentNegatives(NegativeGenerator):
    """An earlier student samples one rationale per question at temperature τ from ``explain: x``."""

    def __init__(self, name: str, fixed: bool, with_teacher: bool, description: str):
        self.name, self.fixed, self.with_teacher, self.description = name, fixed, with_teacher, description
        # sample_batch_size: sequences per generate call when an iteration's negatives are
        # drawn ahead (speed and memory only).
        self.defaults = {"temperature": 1.5, "sample_batch_size": 256}
        if not fixed:
            self.defaults["lag"] = 5

    def lag(self, params: dict[str, Any]) -> int | None:
        return None if self.fixed else params["lag"]

    def check(self, params: dict[str, Any]) -> None:
        if params.get("lag", 0) < 0:
            raise ConfigError(f"negatives.lag: must be >= 0, got {params['lag']}")
        if params["temperature"] <= 0:
            raise ConfigError(f"negatives.temperature: must be > 0, got {params['temperature']}")
        if params["sample_batch_size"] < 1:
            raise ConfigError(f"negatives.sample_batch_size: must be >= 1, got {params['sample_batch_size']}")

    def session(self, context: TrainContext, params: dict[str, Any]):
        from qcrd_bench.selfplay import SelfPlaySession

        return SelfPlaySession(context, lag=params.get("lag", 0), fixed=self.fixed,
                               temperature=params["temperature"], with_teacher=self.with_teacher,
                               sample_batch_size=params["sample_batch_size"])


@hookimpl
def register_negative_generators(register):
    register(NoNegatives())
    register(TeacherMinority())
    register(StudentNegatives("self-play", fixed=False, with_teacher=False,
                              description="the student as it was `lag` iterations earlier samples one rationale"))
    register(StudentNegatives("fixed", fixed=True, with_teacher=False,
                              description="the initial student samples one rationale (the 'Fixed' ablation)"))
    register(StudentNegatives("teacher+self-play", fixed=False, with_teacher=True,
                              description="teacher minority samples plus self-play negatives (QCRD default)"))
    register(StudentNegatives("teacher+fixed", fixed=True, with_teacher=True,
                              description="teacher minority samples plus negatives of the initial student"))
