"""Built-in teachers (rationale sources)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qcrd_bench.components import Rationale, Task, TaskData, Teacher, TeacherOutput
from qcrd_bench.data import fetch_dss, sha256_file
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
    # e-SNLI's rationales may say "Premise" themselves: cut at the stop only after the answer.
    stop_after_answer: bool = False
    batches: dict = field(default_factory=dict, compare=False)  # split -> number of {split}_CoT_{i}.json files

    @property
    def source(self) -> str:
        """The task folder whose input rows the completions follow, e.g. "svamp/dss"."""
        return self.folder.rsplit("/", 1)[0]

    def files(self, split: str) -> list[str]:
        return [f"{self.folder}/{split}_CoT_{i}.json" for i in range(self.batches.get(split, 0))]


# Batch files per split as DSS's loaders read them (data_utils.py: *_batch_idxs).
PALM_LAYOUTS = {
    "svamp": PalmLayout("svamp/dss/llm", stop="Q:", answer_marker="The answer is", batches={"train": 2, "test": 1}),
    "cqa": PalmLayout("cqa/dss/llm", stop="Q:", answer_marker="So the answer is", batches={"train": 10, "test": 2}),
    "anli1": PalmLayout("anli1/dss/llm", stop="Premise:", answer_marker="So the answer is",
                        batches={"train": 4, "valid": 1, "test": 1}),
    "esnli": PalmLayout("esnli/dss/llm", stop="Premise", answer_marker="Answer:", stop_after_answer=True,
                        batches={"train": 100, "valid": 2, "test": 2}),
}


def split_palm_output(output: str, layout: PalmLayout) -> tuple[str, str | None]:
    """Cut a raw PaLM completion into (rationale, answer text); the answer is None
    when the completion has no answer marker.  The answer is its first line: a few
    completions end in a truncated next example ("(84 / 2).\n\nQ", "entailment\n\nPre")
    that the stop string cannot catch."""
    if layout.stop_after_answer:
        rationale, marker, rest = output.partition(layout.answer_marker)
        if not marker:
            return rationale.split(layout.stop, 1)[0].strip(), None
        return rationale.strip(), _answer_line(rest.split(layout.stop, 1)[0])
    text = output.split(layout.stop, 1)[0].strip()
    rationale, marker, answer = text.partition(layout.answer_marker)
    if not marker:
        return text, None
    return rationale.strip(), _answer_line(answer)


def _answer_line(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip().rstrip(".").strip()


def palm_completions(layout: PalmLayout, split: str) -> tuple[list[str], dict[str, str]]:
    """All completions of a split, concatenated over the numbered batch files (a file the
    manifest lacks, e.g. e-SNLI train, comes from the DSS datasets.zip)."""
    outputs, files = [], {}
    for relpath in layout.files(split):
        path = fetch_dss(relpath)
        files[relpath] = sha256_file(path)
        outputs.extend(read_json_list(path, item_type=str))
    return outputs, files


class DssPalm(Teacher):
    name = "dss-palm"
    description = ("PaLM-540B few-shot CoT rationales published with Distilling Step-by-Step (1 per question; "
                   f"tasks: {', '.join(PALM_LAYOUTS)})")

    def rationales(self, task: Task, data: TaskData, params: dict[str, Any]) -> TeacherOutput:
        layout = self._layout(task, data)
        outputs, files = {}, {}
        for split in sorted({e.source[0] for e in data.train}):
            if not layout.files(split):
                raise ConfigError(f"teacher 'dss-palm' has no {split!r} rationales for task {task.name!r}")
            outputs[split], split_files = palm_completions(layout, split)
            files.update(split_files)
        rationales, parsed, correct, unmarked = {}, 0, 0, 0
        for example in data.train:
            split, row = example.source
            if row >= len(outputs[split]):
                raise InputFileError(f"{layout.folder}/{split}_CoT_*.json: {len(outputs[split])} completions, "
                                     f"but the {split} file has row {row + 1}; the files are not aligned")
            text, answer_text = split_palm_output(outputs[split][row], layout)
            unmarked += answer_text is None
            answer = task.extract_answer(answer_text, example) if answer_text is not None else None
            parsed += answer is not None
            correct += task.answers_match(answer, example.answer)
            rationales[example.id] = [Rationale(text=text, answer=answer, origin="dss-palm")]
        n = max(len(data.train), 1)
        stats = {"teacher_parse_rate": parsed / n, "teacher_accuracy": correct / n,
                 "teacher_unparseable": float(len(data.train) - parsed),  # no answer in the task's form
                 "teacher_no_answer_marker": float(unmarked),
                 "teacher_completions": float(sum(map(len, outputs.values())))}
        return TeacherOutput(rationales=rationales, stats=stats, files=files)

    def survey(self, task: Task, split: str) -> dict[str, float] | None:
        """Statistics of a split's completions read without its input rows (for `data check`
        when the inputs are missing): completions, and answers missing or not in the
        task's form (parsed without the question).  None when the teacher has no such files."""
        layout = PALM_LAYOUTS.get(task.name)
        if layout is None or not layout.files(split):
            return None
        outputs, _ = palm_completions(layout, split)
        answers = [split_palm_output(o, layout)[1] for o in outputs]
        unparseable = sum(a is None or task.parse_answer(a) is None for a in answers)
        return {"teacher_completions": float(len(outputs)), "teacher_unparseable": float(unparseable),
                "teacher_no_answer_marker": float(sum(a is None for a in answers))}

    def _layout(self, task: Task, data: TaskData) -> PalmLayout:
        layout = PALM_LAYOUTS.get(task.name)
        if layout is None:
            raise ConfigError(f"teacher 'dss-palm' has no rationales for task {task.name!r}; "
                              f"available for: {', '.join(sorted(PALM_LAYOUTS))}")
        source = data.notes.get("source", layout.source)
        if source != layout.source:
            # The completions follow the DSS files row by row; any other file would misalign them.
            raise ConfigError(f"teacher 'dss-palm' follows the rows of {layout.source}, but the task reads "
                              f"{source}; use the DSS split (task.split=dss) or another teacher")
        return layout


@hookimpl
def register_teachers(register):
    register(NoTeacher())
    register(DssPalm())
