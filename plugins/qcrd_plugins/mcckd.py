"""Teacher ``mcc-kd``: the ChatGPT rationales published with MCC-KD (10 samples per
SVAMP training question), the multi-sample source QCRD's self-consistency needs."""

from __future__ import annotations

import re
from typing import Any

from qcrd_bench import arith
from qcrd_bench.components import Rationale, Task, TaskData, Teacher, TeacherOutput
from qcrd_bench.data import fetch, sha256_file
from qcrd_bench.errors import ConfigError, InputFileError
from qcrd_bench.hookspecs import hookimpl
from qcrd_bench.readers import read_json_list

FILES = {"svamp": "svamp/mcc_kd/train.json"}


def question_key(text: str) -> str:
    """MCC-KD joins body and question with a space, DSS with a newline: compare
    questions with whitespace collapsed and case folded."""
    return re.sub(r"\s+", " ", text).strip().casefold()


class MccKd(Teacher):
    name = "mcc-kd"
    description = "ChatGPT CoT samples published with MCC-KD (SVAMP: 10 per question), joined on question text"
    defaults = {"samples": 10}

    def check(self, params: dict[str, Any]) -> None:
        if params["samples"] < 1:
            raise ConfigError(f"teacher.samples: must be >= 1, got {params['samples']}")

    def rationales(self, task: Task, data: TaskData, params: dict[str, Any]) -> TeacherOutput:
        if task.name not in FILES:
            raise ConfigError(f"teacher 'mcc-kd' has no rationales for task {task.name!r}; "
                              f"available for: {', '.join(sorted(FILES))}")
        path = fetch(FILES[task.name])
        rows = read_json_list(path, required=("instruction", "output", "label"))
        train = {question_key(e.input): e for e in data.train}
        rationales: dict[str, list[Rationale]] = {}
        n_samples = parsed = correct = 0
        for index, row in enumerate(rows):
            outputs = row["output"]
            if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
                raise InputFileError(f"{path}: item {index}: 'output' must be a list of strings")
            example = train.get(question_key(str(row["instruction"])))
            if example is None:  # a question outside this run's training split: never trained on
                continue
            samples = [Rationale(text=o.strip(), answer=arith.find_last_number(o), origin="mcc-kd")
                       for o in outputs[: params["samples"]]]
            rationales[example.id] = samples
            n_samples += len(samples)
            parsed += sum(s.answer is not None for s in samples)
            correct += sum(task.answers_match(s.answer, example.answer) for s in samples)
        stats = {"teacher_questions": float(len(rationales)), "teacher_dropped": float(len(rows) - len(rationales)),
                 "teacher_samples": float(n_samples), "teacher_parse_rate": parsed / max(n_samples, 1),
                 "teacher_accuracy": correct / max(n_samples, 1)}
        return TeacherOutput(rationales=rationales, stats=stats, files={FILES[task.name]: sha256_file(path)})


@hookimpl
def register_teachers(register):
    register(MccKd())
