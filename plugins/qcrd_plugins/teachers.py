"""Built-in teachers (rationale sources)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qcrd_bench.components import Rationale, Task, TaskData, Teacher, TeacherOutput
from qcrd_bench.data import fetch, manifest, sha256_file
from qcrd_bench.errors import ConfigError, InputFileError
from qcrd_bench.hookspecs import hookimpl
from qcrd_bench.readers import read_json_list


class NoTeacher(Teacher):
    name = "none"
    description = "no rationales (label-only methods)"

    def rationales(self, task: Task, data: TaskData, params: dict[str, Any]) -> TeacherOutput:
        return TeacherOutput(rationales={})


@dataclass(frozen=True)
class PalmLayout:
    """Where a task's PaLM completions live and how to cut them (data README)."""

    folder: str  # e.g. "svamp/dss/llm"
    stop: str  # the invented next few-shot example starts here
    answer_marker: str  # rationale before it, answer after it


PALM_LAYOUTS = {
    "svamp": PalmLayout("svamp/dss/llm", stop="Q:", answer_marker="The answer is"),
}


def split_palm_output(output: str, layout: PalmLayout) -> tuple[str, str | None]:
    """Cut a raw PaLM completion into (rationale, answer text); the answer is None
    when the completion has no answer marker."""
    text = output.split(layout.stop, 1)[0].strip()
    rationale, marker, answer = text.partition(layout.answer_marker)
    if not marker:
        return text, None
    return rationale.strip(), answer.strip().rstrip(".").strip()


class DssPalm(Teacher):
    name = "dss-palm"
    description = "PaLM-540B few-shot CoT rationales published with Distilling Step-by-Step (1 per question)"

    def rationales(self, task: Task, data: TaskData, params: dict[str, Any]) -> TeacherOutput:
        layout = PALM_LAYOUTS.get(task.name)
        if layout is None:
            raise ConfigError(f"teacher 'dss-palm' has no rationales for task {task.name!r}; "
                              f"available for: {', '.join(sorted(PALM_LAYOUTS))}")
        outputs, files = self._completions(layout, "train")
        rationales, parsed, correct, unmarked = {}, 0, 0, 0
        for example in data.train:
            split, row = example.source
            if row >= len(outputs):
                raise InputFileError(f"{layout.folder}/{split}_CoT_*.json: {len(outputs)} completions, "
                                     f"but the {split} file has row {row + 1}; the files are not aligned")
            text, answer_text = split_palm_output(outputs[row], layout)
            unmarked += answer_text is None
            answer = task.parse_answer(answer_text) if answer_text is not None else None
            parsed += answer is not None
            correct += task.answers_match(answer, example.answer)
            rationales[example.id] = [Rationale(text=text, answer=answer, origin="dss-palm")]
        n = max(len(data.train), 1)
        stats = {"teacher_parse_rate": parsed / n, "teacher_accuracy": correct / n,
                 "teacher_unparseable": float(len(data.train) - parsed),  # no answer in the task's form
                 "teacher_no_answer_marker": float(unmarked)}
        return TeacherOutput(rationales=rationales, stats=stats, files=files)

    def _completions(self, layout: PalmLayout, split: str) -> tuple[list[str], dict[str, str]]:
        """All completions of a split, concatenated over the numbered batch files."""
        outputs, files, index = [], {}, 0
        while f"{layout.folder}/{split}_CoT_{index}.json" in manifest():
            relpath = f"{layout.folder}/{split}_CoT_{index}.json"
            path = fetch(relpath)
            files[relpath] = sha256_file(path)
            outputs.extend(read_json_list(path, item_type=str))
            index += 1
        return outputs, files


@hookimpl
def register_teachers(register):
    register(NoTeacher())
    register(DssPalm())
